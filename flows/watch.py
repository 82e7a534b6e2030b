"""Runs triggered by new audio, and backfills over partitions.

`dataflux-watch` polls a source (a local folder or an fsspec URL such as `s3://bucket/prefix/`) and
emits `dataflux.source.updated` when it holds files the run folder has not accounted for yet (neither a
clip nor an ingest reject: the same rule ingest applies). The `dataflux-synthesize` deployment is
triggered by that event; its ingest lists the source again and takes exactly the files not yet
accounted for, so the run processes just the new files. Files announced once are not announced again
for `reannounce_after_s` (a triggered run still queued or running), after which a file still missing
(its run failed) is announced again.

`dataflux-backfill` runs the synthesize deployment once per partition (`SOURCE/<partition>/`, e.g. a
date), each into its own run folder, at most `max_concurrent` at a time (the synthesize deployment has
no deployment-wide limit: its runs queue on their run folder's lock).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from prefect import flow, get_run_logger

SOURCE_EVENT = "dataflux.source.updated"
STATE_FOLDER = "watch"


def resource_id(source: str) -> str:
    return "dataflux.source." + hashlib.sha256(source.encode()).hexdigest()[:16]


def new_files(source: str, run_dir: str) -> list[str]:
    """The source's files that the run folder has neither as clips nor as ingest rejects."""
    from dataflux.sources import list_source
    from dataflux.stages.ingest import Ingest
    from dataflux.step import Context
    from storage.run_folder import RunFolder

    done = Ingest(source).done(Context(RunFolder(run_dir)))
    return [item["uri"] for item in list_source(source) if item["uri"] not in done]


def _state_url(run_dir: str, source: str) -> str:
    return f"{run_dir.rstrip('/')}/{STATE_FOLDER}/{resource_id(source).rsplit('.', 1)[1]}.json"


def poll(source: str, run_dir: str, config: str, reannounce_after_s: float = 3600, now: float | None = None) -> dict:
    """One look at the source: returns {new, announce}; `announce` lists the files to announce now
    and records them as announced (in RUN_DIR/watch/)."""
    now = time.time() if now is None else now
    source = source if "://" in source else str(Path(source).resolve())
    run_dir = run_dir if "://" in run_dir else str(Path(run_dir).resolve())
    fresh = new_files(source, run_dir)
    import fsspec

    fs, state_path = fsspec.core.url_to_fs(_state_url(run_dir, source))
    announced = json.loads(fs.cat_file(state_path)) if fs.exists(state_path) else {}
    announced = {uri: at for uri, at in announced.items() if uri in set(fresh)}  # ingested since: forget
    due = [uri for uri in fresh if now - announced.get(uri, -1e18) >= reannounce_after_s]
    for uri in due:
        announced[uri] = now
    fs.makedirs(fs._parent(state_path), exist_ok=True)
    fs.pipe_file(state_path, json.dumps(announced, indent=1, sort_keys=True).encode())
    return {"source": source, "run_dir": run_dir, "config": config, "new": len(fresh), "announce": due}


def source_updated_event(source: str, run_dir: str, config: str, files: list[str]) -> dict:
    """The `dataflux.source.updated` event announcing `files` (URIs) new in `source`: the keyword
    arguments of `prefect.events.emit_event`. The `dataflux-synthesize` deployment's trigger (prefect.yaml)
    matches its resource id and takes source, run_dir and config from the payload; its ingest then lists
    the source and takes exactly the files the run folder has not accounted for (`files` is informative,
    the first 100). The polling watcher and the notification receiver (flows/notify.py) both emit this."""
    return {"event": SOURCE_EVENT,
            "resource": {"prefect.resource.id": resource_id(source), "prefect.resource.name": source},
            "payload": {"source": source, "run_dir": run_dir, "config": config, "count": len(files),
                        "files": list(files)[:100]}}


def emit_source_updated(source: str, run_dir: str, config: str, files: list[str]):
    """Emit `source_updated_event(...)` to the Prefect API in PREFECT_API_URL; returns the event (None
    when no API is configured)."""
    from prefect.events import emit_event

    return emit_event(**source_updated_event(source, run_dir, config, files))


@flow(name="dataflux-watch", log_prints=True, result_serializer="json")
def watch(source: str, run_dir: str, config: str = "examples/demo.yaml", reannounce_after_s: float = 3600) -> dict:
    """Poll `source` once (a deployment's interval schedule makes it a watcher); emit
    `dataflux.source.updated` when it has files the run folder has not accounted for."""
    config = str(Path(config).resolve()) if "://" not in config else config
    result = poll(source, run_dir, config, reannounce_after_s)
    logger = get_run_logger()
    if result["announce"]:
        emit_source_updated(result["source"], result["run_dir"], config, result["announce"])
        logger.info("%d new file(s) in %s: emitted %s", len(result["announce"]), result["source"], SOURCE_EVENT)
    else:
        logger.info("%s: %d file(s) not yet accounted for, none to announce", result["source"], result["new"])
    return result


def partitions(source: str, names: list[str] | None = None, start: str | None = None,
               end: str | None = None) -> list[str]:
    """Partition folders under `source`: the listed `names`, or every folder whose name lies in
    [start, end] (names compare as text, so ISO dates sort right)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(source)
    found = sorted(Path(p).name for p in fs.ls(root, detail=False) if fs.isdir(p))
    if names:
        missing = sorted(set(names) - set(found))
        if missing:
            raise ValueError(f"partitions not in {source}: {', '.join(missing)}")
        return sorted(names)
    return [p for p in found if (start is None or p >= start) and (end is None or p <= end)]


@flow(name="dataflux-backfill", log_prints=True, result_serializer="json")
def backfill(source: str, run_dir: str, config: str = "examples/demo.yaml", partitions_list: list[str] | None = None,
             start: str | None = None, end: str | None = None, max_concurrent: int = 2,
             deployment: str = "dataflux-synthesize/dataflux-synthesize", timeout_s: float = 24 * 3600) -> list[dict]:
    """One `deployment` run per partition of `source` (SOURCE/<partition>/ into RUN_DIR/<partition>/),
    at most `max_concurrent` at a time; returns each run's partition, id and final state."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    if max_concurrent < 1:
        raise ValueError(f"max_concurrent must be >= 1, not {max_concurrent}")
    chosen = partitions(source, partitions_list, start, end)
    logger = get_run_logger()
    logger.info("backfill of %d partition(s), %d at a time: %s", len(chosen), max_concurrent, ", ".join(chosen))
    queue, running, done = list(chosen), {}, []
    deadline = time.time() + timeout_s
    with get_client(sync_client=True) as client:
        while queue or running:
            while queue and len(running) < max_concurrent:
                part = queue.pop(0)
                run = run_deployment(deployment, timeout=0, as_subflow=False, flow_run_name=f"backfill-{part}",
                                     parameters={"source": f"{source.rstrip('/')}/{part}", "config": config,
                                                 "run_dir": f"{run_dir.rstrip('/')}/{part}"})
                running[run.id] = part
            for run_id, part in list(running.items()):
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_final():
                    done.append({"partition": part, "flow_run_id": str(run_id), "state": state.name})
                    logger.info("partition %s: %s", part, state.name)
                    del running[run_id]
            if time.time() > deadline:
                raise TimeoutError(f"backfill: {len(running) + len(queue)} partition(s) unfinished after {timeout_s} s")
            if running:
                time.sleep(2)
    return sorted(done, key=lambda d: d["partition"])
