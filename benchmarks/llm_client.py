"""LLM client throughput against a local OpenAI-protocol server with a fixed latency L.

For each concurrency C (64 and 256 by default), C x rounds requests through `LLMClient`: requests per
second divided by the ideal C / L (target at C = 256: >= 0.8) and the client's CPU time per request
(target <= 1.5 ms), beside the same load through the openai package (`AsyncOpenAI` + `asyncio.gather`,
the client's former transport). The server (uvicorn + a 20-line ASGI app) runs in its own process on
loopback. Writes benchmarks/results/llm_client.json with a `runs` list.

    python benchmarks/llm_client.py [--latency 1.0] [--rounds 10] [--concurrency 64 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_result  # noqa: E402
from dataflux.llm.client import Endpoint, LLMClient, run_all  # noqa: E402
from dataflux.llm.server import free_port  # noqa: E402

SERVER = '''
import asyncio, json, sys
LATENCY = float(sys.argv[1])
BODY = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}).encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if scope["method"] == "POST":
        await asyncio.sleep(LATENCY)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
'''


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = SERVER + f"\nimport uvicorn\nuvicorn.run(app, host='127.0.0.1', port={port}, log_level='error', " \
                    f"backlog=1024, limit_concurrency=1000)\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(latency)])
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    return proc, url


def messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"request {i}"}]


def ours(url: str, n: int, concurrency: int) -> tuple[float, float]:
    """(seconds, client CPU ms per request) for n requests through LLMClient at this concurrency."""
    client = LLMClient(Endpoint(base_url=url, model="m", concurrency=concurrency, max_retries=0))
    requests = [{"messages": messages(i), "template_version": "bench"} for i in range(n)]
    cpu0, start = time.process_time(), time.perf_counter()
    results = run_all(client, requests)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    assert all(r.text == "ok" for r in results), [r for r in results if not hasattr(r, "text")][:3]
    return elapsed, cpu / n * 1000


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plain_openai(url: str, n: int, concurrency: int) -> tuple[float, float, int]:
    """The same through the openai package (`AsyncOpenAI` + `asyncio.gather`): the old transport."""
    from openai import AsyncOpenAI

    async def go():
        client = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i):
            async with gate:
                return await client.chat.completions.create(model="m", messages=messages(i))

        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        await client.close()
        return sum(isinstance(r, Exception) for r in results)

    cpu0, start = time.process_time(), time.perf_counter()
    failed = asyncio.run(go())
    return time.perf_counter() - start, (time.process_time() - cpu0) / n * 1000, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per reply (LLM replies take seconds)")
    ap.add_argument("--rounds", type=int, default=10, help="requests per run = rounds x concurrency")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    proc, url = start_server(args.latency)
    runs = []
    try:
        ours(url, 64, 64)  # warm up imports
        for c in args.concurrency:
            n = args.rounds * c
            server0 = process_cpu_s(proc.pid)
            seconds, cpu_ms = ours(url, n, c)
            server_ms = (process_cpu_s(proc.pid) - server0) / n * 1000
            openai_s, openai_cpu_ms, openai_failed = plain_openai(url, n, c)
            ideal = c / args.latency
            runs.append({"concurrency": c, "requests": n, "requests_per_s": round(n / seconds, 2),
                         "ideal_per_s": ideal, "ratio": round(n / seconds / ideal, 4),
                         "cpu_ms_per_request": round(cpu_ms, 3), "server_cpu_ms_per_request": round(server_ms, 3),
                         "openai_package": {"ratio": round(n / openai_s / ideal, 4),
                                            "cpu_ms_per_request": round(openai_cpu_ms, 3),
                                            "failed": openai_failed}})
            print(json.dumps(runs[-1]), flush=True)
    finally:
        proc.terminate()
        proc.wait()
    top = max(runs, key=lambda r: r["concurrency"])
    write_result(
        "llm_client", "requests per second", top["requests_per_s"], f"ideal {top['concurrency']} / L",
        top["ideal_per_s"], target="ratio >= 0.8 of ideal C / L at C = 256 with <= 1.5 ms client CPU per request",
        passed=top["ratio"] >= 0.8 and top["cpu_ms_per_request"] <= 1.5, latency_s=args.latency, runs=runs,
        load_average_1m=[round(load0, 1), round(os.getloadavg()[0], 1)])  # before, after: a shared machine


if __name__ == "__main__":
    main()
