"""Per-endpoint limits shared by every request to it: concurrency, requests and tokens per minute,
and the cool-down that follows an HTTP 429."""

from __future__ import annotations

import asyncio
import time


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


class EndpointLimiter:
    def __init__(self, concurrency: int, rpm: float | None = None, tpm: float | None = None):
        self.concurrency = concurrency
        self.requests = Bucket(rpm) if rpm else None
        self.tokens = Bucket(tpm) if tpm else None
        self.cooldown_until = 0.0
        self.cooldowns = 0
        self.rebind()

    def rebind(self) -> None:
        """New asyncio primitives for a new event loop; budgets and cool-down carry over."""
        self.semaphore = asyncio.Semaphore(self.concurrency)
        self._lock = asyncio.Lock()

    def cool_down(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        if until > self.cooldown_until:
            self.cooldown_until = until
            self.cooldowns += 1

    async def wait_turn(self, tokens: int) -> None:
        """Wait out any cool-down and the per-minute budgets (call while holding the semaphore)."""
        async with self._lock:
            while True:
                delay = self.cooldown_until - time.monotonic()
                for bucket, amount in ((self.requests, 1), (self.tokens, tokens)):
                    if bucket is not None and delay <= 0:
                        delay = max(delay, bucket.wait_time(amount))
                if delay <= 0:
                    return
                await asyncio.sleep(delay)
