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


def run_folder_limit(run_uri: str) -> str:
    """The global concurrency limit that keeps one flow run per run folder: `dataflux-run-` and a hash of
    the folder's URI (limit names are short and plain; the URI is in the limit's holder logs)."""
    import hashlib

    return "dataflux-run-" + hashlib.sha256(run_uri.rstrip("/").encode()).hexdigest()[:16]


LEASE_S = 300.0  # Prefect's default; the flow renews it while it runs


@contextmanager
def run_folder_slot(run_uri: str, timeout_s: float | None = None):
    """Hold the run folder's one slot (limit 1, created on first use) for the whole flow run; yields the
    lease id. A second flow run into the same folder waits here until the first ends, while runs into
    other folders go ahead. The run-folder lock (storage/run_folder.py) stays the guarantee; this turns
    "refused" into "queued" across workers.

    A flow process that was killed leaves its lease behind until it lapses (LEASE_S). The flow puts its
    lease id into the folder lock's owner record (`slot_lease`); when no live process holds a local
    folder's lock, the lease its last holder named is released at once instead of waited out."""
    from uuid import UUID

    from prefect import get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency._leases import maintain_concurrency_lease
    from prefect.concurrency._sync import acquire_concurrency_slots_with_lease, release_concurrency_slots_with_lease
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    from storage.run_folder import RunFolder

    name = run_folder_limit(run_uri)
    log = get_run_logger()
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # another run made it first
                pass
        stale = (RunFolder(run_uri).last_holder() or {}).get("slot_lease")
        if stale:
            try:  # a lease its holder released already is no longer known: nothing to do
                client.release_concurrency_slots_with_lease(UUID(stale))
                log.info("run folder %s: released slot lease %s of its last holder, which is gone", run_uri, stale)
            except Exception:  # noqa: BLE001  (unknown or lapsed lease: 404)
                pass
    log.info("run folder %s: waiting for its slot (%s) if another flow run holds it", run_uri, name)
    lease = acquire_concurrency_slots_with_lease([name], 1, timeout_seconds=timeout_s, strict=True,
                                                 lease_duration=LEASE_S).lease_id
    try:
        log.info("run folder %s: slot %s held", run_uri, name)
        # a renewal that fails (a server restarting) does not end the run: the folder lock still guards it
        with maintain_concurrency_lease(lease, LEASE_S, raise_on_lease_renewal_failure=False):
            yield str(lease)
    finally:
        release_concurrency_slots_with_lease(lease)
