"""Greedy decoding speed of Eureka-Audio: eager `generate()` (dynamic cache) against a static KV cache with
`torch.compile` (model/decode.py), at batch 1 and batch 16. Every row decodes exactly `--new-tokens`
tokens (end tokens ignored), from a 2 s clip and a short question; tokens/s = rows x new tokens / the
best of 3 timed calls, after one untimed warm-up call per setting (the compile happens there; its time is
reported separately).

    .venv/bin/python benchmarks/decode.py [--new-tokens 64] [--threads 1]

On CPU: the tiny model. With a GPU: also the full-size model (Whisper large-v3 encoder, MoE adapter,
Qwen3-1.7B shape) with random weights in bf16; the paper reports 269.7 tokens/s at batch 1 and the
target here is >= 150. The JSON says whether a GPU was present.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import best_of, write_result  # noqa: E402


def batch_for(processor, rows: int, seconds: float = 2.0) -> dict:
    rng = np.random.default_rng(0)
    audios = [(0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32) for _ in range(rows)]
    enc = processor.pad([processor.encode("What do you hear?", a, None, "You are an expert listener.")
                         for a in audios], "left")
    enc.update(processor.features(audios))
    enc.pop("labels")
    return enc


def measure(model, processor, rows: int, new_tokens: int) -> dict:
    from model.decode import greedy

    batch = batch_for(processor, rows)
    out = {}
    for name, static in (("eager", False), ("static_compile", True)):
        start = time.perf_counter()
        ids = greedy(model, batch, new_tokens, static=static, exact_length=True)  # warm-up (compiles)
        warm = time.perf_counter() - start
        assert ids.shape[1] == batch["input_ids"].shape[1] + new_tokens
        if torch.cuda.is_available():
            torch.cuda.synchronize()

        def run(static=static):
            greedy(model, batch, new_tokens, static=static, exact_length=True)
            if torch.cuda.is_available():
                torch.cuda.synchronize()

        seconds = best_of(run, 3)
        out[name] = {"tokens_per_s": round(rows * new_tokens / seconds, 1), "seconds": round(seconds, 3),
                     "first_call_s": round(warm, 2)}
    # the same tokens either way: the static cache changes speed, not results
    out["identical_outputs"] = bool(torch.equal(greedy(model, batch, new_tokens, False, True),
                                                greedy(model, batch, new_tokens, True, True)))
    return out


def full_size_model():
    from model.info import load_config
    from model.modeling import EurekaAudioForConditionalGeneration
    from model.tiny import byte_tokenizer
    from model.processing import EurekaAudioProcessor

    config = load_config(str(ROOT / "model" / "configs" / "eureka-audio-full.json"))
    processor = EurekaAudioProcessor.for_config(config, byte_tokenizer())  # any tokenizer: random weights
    for key, value in processor.token_ids().items():
        setattr(config, key, value)
    with torch.device("cuda"):
        model = EurekaAudioForConditionalGeneration(config)
    return model.to(torch.bfloat16).eval(), processor


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (one is fastest on a shared 2-core VM)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from model.tiny import tiny_model_and_processor

    model, processor = tiny_model_and_processor()
    model.eval()
    tiny = {f"batch_{rows}": measure(model, processor, rows, a.new_tokens) for rows in (1, 16)}
    gpu = torch.cuda.is_available()
    full = None
    if gpu:
        model, processor = full_size_model()
        full = {f"batch_{rows}": measure(model, processor, rows, a.new_tokens) for rows in (1, 16)}
    value, base = tiny["batch_1"]["static_compile"]["tokens_per_s"], tiny["batch_1"]["eager"]["tokens_per_s"]
    return write_result(
        "decode", "tokens/s", value, "eager generate (dynamic cache), tiny model, batch 1, CPU", base,
        "static cache + compile at least as fast as eager at batch 1; on a GPU, the full-size model >= 150 "
        "tokens/s at batch 1",
        passed=value >= base and (full is None or full["batch_1"]["static_compile"]["tokens_per_s"] >= 150),
        new_tokens=a.new_tokens, threads=a.threads, tiny_cpu=tiny, full_size_gpu=full,
        gpu=torch.cuda.get_device_name() if gpu else "none: no GPU was available to the session that ran this; "
        "the full-size target (>= 150 tokens/s at batch 1) is unmeasured")


if __name__ == "__main__":
    main()
