"""Shared LLM quotas: one Prefect global concurrency limit per LLM endpoint (`dataflux deploy`
creates them), so that many flow runs share one endpoint's quota. A stage task that talks to an
endpoint holds as many slots as its client's concurrency while it runs."""

from __future__ import annotations

import re
from contextlib import ExitStack, contextmanager


def limit_name(endpoint: dict) -> str:
    raw = endpoint.get("name") or endpoint.get("base_url", "")
    return "llm-" + re.sub(r"[^a-z0-9]+", "-", raw.lower().split("://")[-1]).strip("-")


def endpoints(config, stage: str | None = None) -> list[dict]:
    """The remote endpoints (with a base_url) a config's stages talk to; the embedded server is per task."""
    found = []
    if stage in (None, "generate") and config.generate.writer in ("openai", "local"):
        found.append(config.generate.endpoint)
    if stage in (None, "verify"):
        found += [a.endpoint for a in config.verify.answerers if a.backend == "openai"]
        if config.verify.judge.backend in ("openai", "local"):
            found.append(config.verify.judge.endpoint)
    return [e.model_dump() for e in found if e.base_url]


@contextmanager
def llm_slots(stage: str, config):
    from prefect.concurrency.sync import concurrency

    with ExitStack() as stack:
        for e in endpoints(config, stage):
            stack.enter_context(concurrency(limit_name(e), occupy=int(e.get("concurrency", 8)), strict=False))
        yield
