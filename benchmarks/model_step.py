"""Eureka-Audio step cost.

CPU (always): forward+backward time and peak memory of the tiny config; the MoE adapter against a
dense MLP adapter with the same active parameters per token (time ratio).
GPU (when one is present, or with --gpu): the full-size config with random weights in bf16: training
step (forward+backward) tokens/s and MFU, and greedy decoding tokens/s.

    python benchmarks/model_step.py            # writes results/model_step.json (+ model_step_gpu.json on a GPU)
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import best_of, write_result  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, from the vendors' specifications


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_part(threads: int) -> dict:
    from model.adapter import DenseAdapter, MoEAdapter
    from model.tiny import tiny_model_and_processor

    torch.set_num_threads(threads)
    model, processor = tiny_model_and_processor(seed=0)
    model.train()
    rng = np.random.default_rng(0)
    audios = [(rng.standard_normal(80000) * 0.1).astype(np.float32) for _ in range(4)]  # 4 x 5 s
    batch = processor(["What do you hear?"] * 4, audio=audios, answer=["A voice says something."] * 4,
                      padding_side="right")
    tokens = int(batch["attention_mask"].sum())

    def step():
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()

    step()
    before = peak_rss_mb()
    tiny_s = best_of(step, 5)
    tiny = {"seconds_per_step": round(tiny_s, 5), "tokens_per_step": tokens, "tokens_per_s": round(tokens / tiny_s, 1),
            "peak_rss_growth_mb": round(peak_rss_mb() - before, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}

    width, out, hidden, experts, k, shared, n = 1280, 512, 512, 8, 2, 1, 2048
    torch.manual_seed(0)
    moe = MoEAdapter(width, out, experts, k, shared, hidden)
    dense = DenseAdapter(width, out, (k + shared) * hidden)
    x = torch.randn(n, width)

    def run(adapter):
        def go():
            adapter.zero_grad(set_to_none=True)
            y = adapter(x)
            y = y.hidden_states if hasattr(y, "hidden_states") else y
            y.square().mean().backward()
        go()
        return best_of(go, 5)

    dense_s, moe_s = run(dense), run(moe)
    active = sum(p.numel() for p in moe.router.parameters()) + (k + shared) * sum(
        p.numel() for p in moe.experts[0].parameters()) + sum(p.numel() for p in moe.proj.parameters())
    return {"tiny": tiny, "adapter": {"tokens": n, "in_width": width, "experts": experts, "top_k": k,
                                      "shared": shared, "expert_hidden": hidden, "moe_seconds": round(moe_s, 5),
                                      "dense_seconds": round(dense_s, 5),
                                      "moe_active_params": active,
                                      "dense_params": sum(p.numel() for p in dense.parameters())}}


def gpu_part(batch_size: int, text_tokens: int, decode_tokens: int, preset: str = "full", device: str = "cuda") -> dict:
    from model.info import load_config, parameter_counts
    from model.modeling import EurekaAudioForConditionalGeneration

    config = load_config(preset)
    counts = parameter_counts(config)
    config.audio_token_id, config.eos_token_id = config.text_config.vocab_size - 2, None
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    with dev:
        model = EurekaAudioForConditionalGeneration(config).to(torch.bfloat16)
    frames = config.window_frames
    audio_tokens = config.window_samples // config.samples_per_token  # one 30 s window per sample
    seq = audio_tokens + text_tokens
    ids = torch.randint(0, config.audio_token_id, (batch_size, seq), device=dev)
    ids[:, 8:8 + audio_tokens] = config.audio_token_id
    feats = torch.randn(batch_size, config.audio_config.num_mel_bins, frames, device=dev, dtype=torch.bfloat16)
    batch = {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids), "input_features": feats,
             "input_features_mask": torch.ones(batch_size, frames, dtype=torch.long, device=dev)}

    model.eval()  # decoding first, on a model that has never trained (no gradients held)
    prompt = {k: v[:1, :8 + audio_tokens + 16] if k in ("input_ids", "attention_mask") else v[:1]
              for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        model.generate(**prompt, max_new_tokens=8, do_sample=False, eos_token_id=None)
        sync()
        start = time.perf_counter()
        out = model.generate(**prompt, max_new_tokens=decode_tokens, min_new_tokens=decode_tokens, do_sample=False,
                             eos_token_id=None)
        sync()
        decode_s = time.perf_counter() - start
        text_ids = prompt["input_ids"][:, :64]
        sync()
        start = time.perf_counter()
        model.language_model.generate(input_ids=text_ids, max_new_tokens=decode_tokens, min_new_tokens=decode_tokens,
                                      do_sample=False, eos_token_id=None)
        sync()
        lm_s = time.perf_counter() - start
    new = out.shape[1] - prompt["input_ids"].shape[1]
    decode = {"new_tokens": int(new), "seconds": round(decode_s, 3), "tokens_per_s": round(new / decode_s, 1),
              "prompt_tokens": int(prompt["input_ids"].shape[1]),
              "language_model_alone_tokens_per_s": round(decode_tokens / lm_s, 1),
              "note": "eager transformers generate(), no CUDA graphs or static cache: launch-bound at batch 1"}
    model.train()
    def step():
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()

    for _ in range(2):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    step_s = sorted(times)[len(times) // 2]
    tc, ac = config.text_config, config.audio_config
    enc_frames = frames // 2
    flops = 6 * (counts["language_model"] + counts["adapter_active_per_token"]) * batch_size * seq
    flops += 6 * counts["audio_encoder"] * batch_size * enc_frames
    flops += 3 * 4 * tc.num_hidden_layers * seq ** 2 * tc.num_attention_heads * tc.head_dim * batch_size
    flops += 3 * 4 * ac.encoder_layers * enc_frames ** 2 * ac.d_model * batch_size
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    achieved = flops / step_s / 1e12
    train = {"batch_size": batch_size, "seq_len": seq, "audio_tokens": audio_tokens,
             "seconds_per_step": round(step_s, 4),
             "tokens_per_s": round(batch_size * seq / step_s, 1), "achieved_tflops": round(achieved, 1),
             "peak_tflops_spec": peak, "mfu": round(achieved / peak, 4) if peak else None,
             "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if dev.type == "cuda" else None}
    return {"device": name, "parameters": counts, "train_step": train, "greedy_decode_batch1": decode,
            "torch": torch.__version__}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", action="store_true", help="run only the full-size GPU part")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="the GPU part's code on the tiny config and the CPU")
    args = ap.parse_args()
    if args.dry_run:
        print(gpu_part(batch_size=2, text_tokens=16, decode_tokens=8, preset="tiny", device="cpu"))
        return
    if not args.gpu:
        cpu = cpu_part(args.threads)
        a = cpu["adapter"]
        write_result("model_step", "seconds per adapter forward+backward (2048 tokens)", a["moe_seconds"],
                     "dense MLP adapter, same active parameters", a["dense_seconds"],
                     "MoE adapter time <= 2.0x the dense adapter's (routing overhead bounded)",
                     a["moe_seconds"] <= 2.0 * a["dense_seconds"], **cpu, threads=args.threads)
    if args.gpu or torch.cuda.is_available():
        gpu = gpu_part(batch_size=8, text_tokens=128, decode_tokens=256)
        t = gpu["train_step"]
        write_result("model_step_gpu", "training tokens/s (full size, bf16, random weights)", t["tokens_per_s"],
                     "spec peak bf16 TFLOP/s (MFU = achieved / peak)", t["peak_tflops_spec"] or 1.0,
                     "reported: tokens/s, MFU and decode tokens/s on one GPU", True, **gpu)


if __name__ == "__main__":
    main()
