"""The `vllm` backend driven through a stage against vLLM's own offline `LLM.chat` (issue 15).

Same model (a tiny random Qwen2-Audio, built offline), same engine settings, same prompts (the verify
stage's answerer messages: a 2 s clip as an `input_audio` part and a multiple-choice question), same
sampling (greedy, `max_tokens` new tokens with `ignore_eos`, so both do identical work). The baseline is
one `LLM.chat` call over every conversation in vLLM's own venv; the value is the `OpenAIAnswerer` stage's
`process_batch` over the same items through the request layer (HTTP, cache, limits) to the role's
replica on Ray. Engine start-up is excluded from both. Target: requests/s ratio >= 0.9.

    .venv/bin/python benchmarks/inference.py [--requests 64] [--max-tokens 32]

No GPU was available to the session that wrote this, so it measures the CPU engine only; on a GPU node
the same comparison applies with `device: gpu` (a real-size random-weight model, `num_gpus: 1`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_result  # noqa: E402

# vLLM's offline engine, in its own venv; the settings mirror `replicas.server_command` on CPU
OFFLINE = r'''
import json, sys, time
if __name__ == "__main__":
    from vllm import LLM, SamplingParams
    args = json.loads(sys.argv[1])
    conversations = json.loads(open(args["prompts"]).read())
    llm = LLM(model=args["model"], dtype=args["dtype"], max_model_len=args["max_model_len"],
              gpu_memory_utilization=args["gpu_memory_utilization"], max_num_seqs=args["max_num_seqs"],
              enforce_eager=args["enforce_eager"])
    params = SamplingParams(temperature=0.0, max_tokens=args["max_tokens"], ignore_eos=True)
    llm.chat(conversations[:2], params, use_tqdm=False)  # warm-up, as the served engine is warm
    start = time.perf_counter()
    outs = llm.chat(conversations, params, use_tqdm=False)
    took = time.perf_counter() - start
    print("RESULT " + json.dumps({"seconds": took, "requests": len(outs),
                                  "completion_tokens": sum(len(o.outputs[0].token_ids) for o in outs),
                                  "prompt_tokens": sum(len(o.prompt_token_ids) for o in outs)}))
'''


def items(n: int) -> list[dict]:
    import numpy as np

    from dataflux.audio import TARGET_SR, encode_flac

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = np.arange(2 * TARGET_SR) / TARGET_SR
        samples = (0.2 * np.sin(2 * np.pi * (120 + 5 * i) * t) + 0.01 * rng.standard_normal(t.size))
        out.append({"question_id": f"q{i}", "clip_id": f"c{i}", "node_path": "speaker > voice > pitch",
                    "question": f"How high is voice number {i}?", "options": ["Low", "Medium", "High", "Very high"],
                    "audio": encode_flac(samples.astype(np.float32)), "answers": "[]"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-num-seqs", type=int, default=16)
    args = ap.parse_args()

    import ray

    from dataflux.llm.replicas import ServedEndpoint, start_replicas, stop_replicas, vllm_python
    from dataflux.llm.tiny import build_audio_lm
    from verifiers.answerers import OpenAIAnswerer, answerer_messages

    work = Path(tempfile.mkdtemp(prefix="dataflux-inference-"))
    model = build_audio_lm(work / "audio")
    batch = items(args.requests)
    from importlib import resources

    system = resources.files("dataflux").joinpath("prompts/answerer/v1.system.txt").read_text()  # the stage's own
    conversations = [answerer_messages(item, system) for item in batch]
    (work / "prompts.json").write_text(json.dumps(conversations))
    engine = dict(model=str(model), dtype="float32", max_model_len=1024, gpu_memory_utilization=0.1,
                  max_num_seqs=args.max_num_seqs, enforce_eager=True)

    # baseline: vLLM's offline engine on the same conversations
    out = subprocess.run([vllm_python(None), "-c", OFFLINE,
                          json.dumps({**engine, "prompts": str(work / "prompts.json"), "max_tokens": args.max_tokens})],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800,
                         env={**os.environ, "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"})
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"the offline engine failed:\n{out.stderr[-3000:]}")
    offline = json.loads(line[len("RESULT "):])

    # value: the same requests through the answerer stage, the request layer and the role's replica
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    spec = ServedEndpoint(model=str(model), served_name="tiny-qwen2-audio", device="cpu", num_cpus=0.05,
                          host="127.0.0.1", dtype="float32", max_model_len=engine["max_model_len"],
                          gpu_memory_utilization=engine["gpu_memory_utilization"], max_num_seqs=args.max_num_seqs,
                          concurrency=args.requests, max_retries=0, start_timeout_s=1200)
    endpoint = start_replicas(None, spec, "vllm")
    try:
        def stage(cache: str):
            answerer = OpenAIAnswerer("audio_lm", endpoint, cache, max_tokens=args.max_tokens, backend="vllm",
                                      params={"ignore_eos": True})
            answerer.setup()
            return answerer

        warm = stage(str(work / "warm.sqlite"))
        warm.process_batch(batch[:2])
        answerer = stage(str(work / "cache.sqlite"))  # an empty cache: every request goes to the engine
        start = time.perf_counter()
        result = answerer.process_batch(batch)
        took = time.perf_counter() - start
        usage = answerer.client.usage
        # `ignore_eos` makes every reply stop at max_tokens, which the answerer rejects (finish_reason=length)
        # after one attempt (max_retries 0): the engine did the same work as offline, so both count it
        assert len(result.rows) + len(result.rejects) == args.requests
        assert usage.requests == args.requests and usage.completion_tokens == args.requests * args.max_tokens, \
            (usage.requests, usage.completion_tokens, result.rejects[:1])
    finally:
        stop_replicas(spec, "vllm")
        ray.shutdown()

    served_rps, offline_rps = args.requests / took, offline["requests"] / offline["seconds"]
    write_result("inference", "requests/s", served_rps, "vLLM offline LLM.chat, same prompts", offline_rps,
                 ">= 0.9 of vLLM's offline engine (requests/s)", served_rps / offline_rps >= 0.9,
                 requests=args.requests, max_tokens=args.max_tokens, max_num_seqs=args.max_num_seqs,
                 served_tokens_per_s=round(usage.completion_tokens / took, 1),
                 offline_tokens_per_s=round(offline["completion_tokens"] / offline["seconds"], 1),
                 served_prompt_tokens=usage.prompt_tokens, offline_prompt_tokens=offline["prompt_tokens"],
                 model="tiny random Qwen2-Audio (2+2 layers, hidden 128), CPU, float32",
                 gpu="none available to this session: the real-size GPU run was not made")


if __name__ == "__main__":
    main()
