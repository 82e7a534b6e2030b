"""LLM client throughput against a local OpenAI-protocol server with a fixed latency L.

Requests per second at concurrency 64, divided by the ideal 64 / L (target >= 0.9), compared with a
sequential loop and with plain `AsyncOpenAI` + `asyncio.gather`; client CPU time per request.
The server (uvicorn + a 20-line ASGI app) runs in its own process on loopback.

    python benchmarks/llm_client.py [--latency 1.0] [--requests 640]

At L = 0.2 s both clients here top out near 250 requests/s: the openai package costs ~2.5 ms of
client CPU per request, so a 2-core machine (shared with the server) cannot reach 320/s.
"""

from __future__ import annotations

import argparse
import asyncio
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


def ours(url: str, n: int, concurrency: int) -> float:
    client = LLMClient(Endpoint(base_url=url, model="m", concurrency=concurrency, max_retries=0))
    start = time.perf_counter()
    results = run_all(client, [{"messages": messages(i), "template_version": "bench"} for i in range(n)])
    elapsed = time.perf_counter() - start
    assert all(r.text == "ok" for r in results)
    return elapsed


def plain_gather(url: str, n: int, concurrency: int) -> float:
    from openai import AsyncOpenAI

    async def go():
        client = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i):
            async with gate:
                return await client.chat.completions.create(model="m", messages=messages(i))

        await asyncio.gather(*(one(i) for i in range(n)))
        await client.close()

    start = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - start


def sequential(url: str, n: int) -> float:
    client = LLMClient(Endpoint(base_url=url, model="m", concurrency=1, max_retries=0))
    start = time.perf_counter()
    run_all(client, [{"messages": messages(i), "template_version": "bench"} for i in range(n)])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per reply (LLM replies take seconds)")
    ap.add_argument("--requests", type=int, default=640)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    proc, url = start_server(args.latency)
    try:
        ours(url, args.concurrency, args.concurrency)  # warm up connections and imports
        cpu0 = time.process_time()
        ours_s = ours(url, args.requests, args.concurrency)
        cpu_per_request_ms = (time.process_time() - cpu0) / args.requests * 1000
        gather_s = plain_gather(url, args.requests, args.concurrency)
        seq_n = max(10, args.requests // 32)
        seq_s = sequential(url, seq_n)
    finally:
        proc.terminate()
        proc.wait()
    ideal = args.concurrency / args.latency
    rate = args.requests / ours_s
    write_result(
        "llm_client", "requests per second", rate, f"ideal {args.concurrency} / L", ideal,
        target="ours / ideal >= 0.9 at concurrency 64", passed=rate / ideal >= 0.9,
        latency_s=args.latency, requests=args.requests, concurrency=args.concurrency,
        client_cpu_ms_per_request=round(cpu_per_request_ms, 3),
        plain_asyncopenai_gather_rps=round(args.requests / gather_s, 2),
        sequential_rps=round(seq_n / seq_s, 2))


if __name__ == "__main__":
    main()
