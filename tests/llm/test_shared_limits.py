"""An endpoint's requests-per-minute limit holds across all the Ray actors that use it: four actors, each
with its own client (as four stage workers have), together send no more than the limit allows, counted
where the requests arrive (a server speaking the OpenAI protocol over HTTP, in this process).

The limit is scaled down for test time, honestly: rpm 120 is 2 requests/s with a burst of 2 (one
second's worth); any 5 s window may then hold at most 2 * 5 + 2 = 12 requests. Unshared, four actors of
concurrency 4 would send all 32 requests within about 4 s."""

import asyncio
import subprocess
import sys
import threading
import time

import pytest

from dataflux.llm.client import Endpoint, LLMClient, run_all
from dataflux.llm.limits import Bucket, SharedSlots
from tests.conftest import ROOT
from tests.openai_double import OpenAIDouble, completion

RPM, PER_ACTOR, ACTORS, WINDOW_S = 120, 8, 4, 5.0


class Worker:
    def send(self, base_url: str, worker: int) -> dict:
        client = LLMClient(Endpoint(base_url=base_url, model="m", name="test-endpoint", rpm=RPM, concurrency=4,
                                    max_retries=0))
        results = run_all(client, [{"messages": [{"role": "user", "content": f"{worker}-{i}"}],
                                    "template_version": "t"} for i in range(PER_ACTOR)])
        return {"ok": sum(r.text == "done" for r in results), "shared": client.limiter.shared() is not None}


def test_rpm_holds_across_four_ray_actors(ray_session):
    ray = ray_session
    arrivals = []

    def reply(body):
        arrivals.append(time.monotonic())
        return 200, completion("done"), {}

    with OpenAIDouble(reply) as server:
        actors = [ray.remote(num_cpus=0.25)(Worker).remote() for _ in range(ACTORS)]
        outcomes = ray.get([a.send.remote(server.base_url, i) for i, a in enumerate(actors)], timeout=120)
    assert all(o == {"ok": PER_ACTOR, "shared": True} for o in outcomes)
    arrivals.sort()
    total = ACTORS * PER_ACTOR
    assert len(arrivals) == total
    rate, burst = RPM / 60, Bucket(RPM).capacity
    busiest = max(sum(1 for t in arrivals if start <= t < start + WINDOW_S) for start in arrivals)
    assert busiest <= rate * WINDOW_S + burst, busiest
    # and the limit is a pace, not a stall: the whole lot took about (total - burst) / rate seconds
    assert (total - burst) / rate * 0.9 <= arrivals[-1] - arrivals[0] <= (total - burst) / rate + 10


def test_without_ray_the_limit_is_per_process():
    """A process where Ray is not up keeps the budgets itself (a child process: this one has Ray up)."""
    code = ("import asyncio; from dataflux.llm.limits import EndpointLimiter; "
            "limiter = EndpointLimiter(4, rpm=60, name='x'); asyncio.run(limiter.wait_turn(1)); "
            "assert limiter.shared() is None and limiter.requests.level < 1")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


@pytest.mark.parametrize("calls", [1, 5])
def test_reservations_queue_at_the_pace(calls):
    bucket = Bucket(60)  # 1/s, burst 1
    waits = [bucket.reserve(1) for _ in range(calls)]
    assert waits[0] == 0.0
    assert all(abs(w - i) < 0.05 for i, w in enumerate(waits))


class SlotWorker:
    def send(self, base_url: str, worker: int, cluster_concurrency: int | None) -> int:
        client = LLMClient(Endpoint(base_url=base_url, model="m", name="slots-endpoint", concurrency=4,
                                    cluster_concurrency=cluster_concurrency, max_retries=0))
        results = run_all(client, [{"messages": [{"role": "user", "content": f"{worker}-{i}-{cluster_concurrency}"}],
                                    "template_version": "t"} for i in range(6)])
        return sum(r.text == "done" for r in results)


def test_cluster_concurrency_holds_across_four_ray_actors(ray_session):
    """Four actors of concurrency 4 each: with `cluster_concurrency: 3` the server never sees more than 3
    requests at once (and does see 3); without it, it sees more than 3."""
    ray = ray_session
    lock, flight, peaks = threading.Lock(), [0], []

    def reply(body):
        with lock:
            flight[0] += 1
            peaks[-1] = max(peaks[-1], flight[0])
        time.sleep(0.3)
        with lock:
            flight[0] -= 1
        return 200, completion("done"), {}

    with OpenAIDouble(reply) as server:
        for setting in (3, None):
            peaks.append(0)
            actors = [ray.remote(num_cpus=0.25)(SlotWorker).remote() for _ in range(ACTORS)]
            sent = ray.get([a.send.remote(server.base_url, i, setting) for i, a in enumerate(actors)], timeout=120)
            assert sent == [6] * ACTORS
    assert peaks[0] == 3 and peaks[1] > 3, peaks


def test_a_lease_lapses_when_its_holder_dies():
    async def go():
        slots = SharedSlots(2, lease_s=0.5)
        first = await slots.acquire()
        await slots.release(first)  # given back: the slot is free at once
        start = time.monotonic()
        await slots.acquire()
        await slots.acquire()  # both held by a worker that then dies without giving them back
        await slots.acquire()
        return time.monotonic() - start, await slots.stats()

    waited, stats = asyncio.run(go())
    assert 0.45 <= waited <= 2.0 and stats == {"held": 1, "peak": 2, "lapsed": 2}, (waited, stats)
