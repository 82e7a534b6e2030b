"""Per-endpoint limits shared by every request to it: concurrency, requests and tokens per minute,
and the cool-down that follows an HTTP 429.

Within one process the budgets are local token buckets. When Ray is up (stage workers on Ray actors,
on any number of nodes) the per-minute budgets and the cool-down of an endpoint live in one named,
detached Ray actor (`SharedBudget`, one per endpoint and limit setting, zero CPUs) that every process
of the cluster asks for a reservation before each request, so N workers together stay within the
endpoint's rpm and tpm instead of N times them. Concurrency is per process (`Endpoint.concurrency` per
worker) and, when `Endpoint.cluster_concurrency` is set, also for the whole cluster: another named actor
(`SharedSlots`) leases that many request slots to all workers, each lease expiring after the longest a
request may take, so a worker that dies holding slots gives them back. Across flow runs
`Endpoint.shared_limit` bounds concurrency through Prefect's global concurrency limits
(flows/quotas.py)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid


class Bucket:
    """A token bucket refilled continuously at `per_minute / 60` per second, holding one second's worth
    (at least one request), so a burst never exceeds the per-second pace."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def wait_time(self, amount: float) -> float:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        amount = min(amount, self.capacity)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate


    def reserve(self, amount: float) -> float:
        """Take `amount` now, going into debt if need be; returns how long the caller must wait before
        using it. Reservations queue in call order, so sends stay within `capacity + rate * t` over
        any span t however many callers there are."""
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.level -= min(amount, self.capacity)
        return max(0.0, -self.level / self.rate)


class SharedBudget:
    """One endpoint's requests- and tokens-per-minute budgets and 429 cool-down for a whole Ray cluster
    (the body of a named Ray actor: `EndpointLimiter` creates or finds it)."""

    def __init__(self, rpm: float | None, tpm: float | None):
        self.requests = Bucket(rpm) if rpm else None
        self.tokens = Bucket(tpm) if tpm else None
        self.cooldown_until = 0.0
        self.granted = 0

    def reserve(self, tokens: int) -> float:
        self.granted += 1
        waits = [self.cooldown_until - time.monotonic()]
        waits += [b.reserve(n) for b, n in ((self.requests, 1), (self.tokens, tokens)) if b is not None]
        return max(0.0, *waits)

    def cool_down(self, seconds: float) -> None:
        self.cooldown_until = max(self.cooldown_until, time.monotonic() + seconds)

    def stats(self) -> dict:
        return {"granted": self.granted}


def shared_budget(name: str, rpm: float | None, tpm: float | None):
    """The cluster's `SharedBudget` actor for endpoint `name` at these limits, created on first use
    (detached: it outlives the worker that made it, and serves later flow runs on the same cluster)."""
    import ray

    actor = ray.remote(num_cpus=0, max_restarts=-1)(SharedBudget)
    return actor.options(name=f"dataflux-limits:{name}:{rpm}:{tpm}", namespace="dataflux", get_if_exists=True,
                         lifetime="detached").remote(rpm, tpm)


class SharedSlots:
    """At most `slots` requests in flight to one endpoint from the whole Ray cluster (the body of a named
    async Ray actor). A lease not given back within `lease_s` (its holder died) lapses."""

    def __init__(self, slots: int, lease_s: float):
        self.slots, self.lease_s = slots, lease_s
        self.held: dict[str, float] = {}  # lease -> when it lapses
        self.freed = asyncio.Event()
        self.peak = self.lapsed = 0

    async def acquire(self) -> str:
        while True:
            now = time.monotonic()
            for lease in [k for k, until in self.held.items() if until <= now]:
                del self.held[lease]
                self.lapsed += 1
            if len(self.held) < self.slots:
                lease = uuid.uuid4().hex
                self.held[lease] = now + self.lease_s
                self.peak = max(self.peak, len(self.held))
                return lease
            self.freed.clear()
            with contextlib.suppress(asyncio.TimeoutError):  # look at lapsing leases at least once a second
                await asyncio.wait_for(self.freed.wait(), timeout=1.0)

    async def release(self, lease: str) -> None:
        if self.held.pop(lease, None) is not None:
            self.freed.set()

    async def stats(self) -> dict:
        return {"held": len(self.held), "peak": self.peak, "lapsed": self.lapsed}


def shared_slots(name: str, slots: int, lease_s: float):
    """The cluster's `SharedSlots` actor for endpoint `name`, created on first use (detached)."""
    import ray

    actor = ray.remote(num_cpus=0, max_restarts=-1)(SharedSlots)
    return actor.options(name=f"dataflux-slots:{name}:{slots}", namespace="dataflux", get_if_exists=True,
                         lifetime="detached").remote(slots, lease_s)


def _ray_up() -> bool:
    """Ray is up in this process: only a process that already uses Ray shares limits through it."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


class EndpointLimiter:
    def __init__(self, concurrency: int, rpm: float | None = None, tpm: float | None = None,
                 name: str | None = None, cluster_concurrency: int | None = None, lease_s: float = 600.0):
        # one process never holds more than the whole cluster may
        self.concurrency = min(concurrency, cluster_concurrency or concurrency)
        self.cluster_concurrency, self.lease_s = cluster_concurrency, lease_s
        self._slots = None
        self.rpm, self.tpm, self.name = rpm, tpm, name
        self.requests = Bucket(rpm) if rpm else None
        self.tokens = Bucket(tpm) if tpm else None
        self.cooldown_until = 0.0
        self.cooldowns = 0
        self._shared = None
        self.rebind()

    def shared(self):
        """The cluster-wide budget actor when Ray is up in this process and a budget is set; else None."""
        if self._shared is None and self.name and (self.rpm or self.tpm) and _ray_up():
            self._shared = shared_budget(self.name, self.rpm, self.tpm)
        return self._shared

    @contextlib.asynccontextmanager
    async def cluster_slot(self):
        """Hold one of the cluster's request slots for this endpoint (a no-op without Ray or without
        `cluster_concurrency`: the process's own semaphore is then the bound)."""
        if self._slots is None and self.cluster_concurrency and self.name and _ray_up():
            self._slots = shared_slots(self.name, self.cluster_concurrency, self.lease_s)
        if self._slots is None:
            yield
            return
        lease = await self._slots.acquire.remote()
        try:
            yield
        finally:
            self._slots.release.remote(lease)

    def rebind(self) -> None:
        """New asyncio primitives for a new event loop; budgets and cool-down carry over."""
        self.semaphore = asyncio.Semaphore(self.concurrency)
        self._lock = asyncio.Lock()

    def cool_down(self, seconds: float) -> None:
        if (shared := self.shared()) is not None:
            shared.cool_down.remote(seconds)
        until = time.monotonic() + seconds
        if until > self.cooldown_until:
            self.cooldown_until = until
            self.cooldowns += 1

    async def wait_turn(self, tokens: int) -> None:
        """Wait out any cool-down and the per-minute budgets (call while holding the semaphore)."""
        if (shared := self.shared()) is not None:
            await asyncio.sleep(await shared.reserve.remote(tokens))
            return
        async with self._lock:
            while True:
                delay = self.cooldown_until - time.monotonic()
                for bucket, amount in ((self.requests, 1), (self.tokens, tokens)):
                    if bucket is not None and delay <= 0:
                        delay = max(delay, bucket.wait_time(amount))
                if delay <= 0:
                    return
                await asyncio.sleep(delay)
