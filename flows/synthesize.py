"""The `dataflux-synthesize` flow: the DataFlux stages as coarse Prefect tasks over shards.

Prefect is the control plane: each task runs one stage over one shard of clips and returns table URIs
and versions, never rows or audio. Ray is the data plane: inside a task the stage runs on the
configured runner (`ray` fans out to actor pools; `ray_address` joins a cluster).

Shards: ceil(clips / shard_size), at most `max_shards`, so the number of task runs is bounded however
many clips arrive: ingest 1 + annotate S + (generate S + verify S + filter 1) per closed-loop pass
(at most max_rounds + 2 passes) + publish 1.

Re-runs: every task but ingest is cached on (stage, shard, config hash, the versions of the tables it
reads), so re-running a completed flow skips completed shards. Ingest always lists the source again
(it skips known inputs itself); a source that gained files changes the clips table's version, and only
the new clips go through (the stages skip what is already accounted for).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.context import TaskRunContext
from prefect.events import emit_event
from prefect.runtime import flow_run as prefect_flow_run

from flows.artifacts import Progress, corpus_card, stage_table
from flows.quotas import llm_slots
from storage.run_folder import RunFolder

READS = {"ingest": (), "annotate": ("clips",), "generate": ("annotations", "rejects", "kept"),
         "verify": ("questions",), "filter": ("verdicts",), "publish": ("kept",)}


_RUNNERS: dict = {}


def shared_runner(kind: str, address: str | None):
    """One runner per flow process: a Ray runtime starts once, not once per task."""
    from dataflux.runners import make_runner

    if (kind, address) not in _RUNNERS:
        _RUNNERS[(kind, address)] = make_runner(kind, address)
    return _RUNNERS[(kind, address)]


def close_runners() -> None:
    while _RUNNERS:
        _RUNNERS.popitem()[1].close()


def versions(run: RunFolder, names) -> dict[str, int | None]:
    return {n: run.table(n).version() for n in names}


def cache_key(context: TaskRunContext, parameters: dict) -> str:
    """Same stage, shard, config and input table versions: the same (cached) result."""
    p = parameters
    reads = ",".join(f"{k}={v}" for k, v in sorted(p["inputs"].items()))
    return f"dataflux-{p['stage']}-{p['shard'][0]}of{p['shard'][1]}-{p['config_hash']}-{p['run_dir_key']}-{reads}"


@task(name="stage", cache_key_fn=cache_key, persist_result=True, retries=2, retry_delay_seconds=[5, 30],
      retry_jitter_factor=0.5, task_run_name="{stage}[{shard[0]}/{shard[1]}]")
def stage_task(stage: str, shard: tuple[int, int], config_path: str, overrides: dict, config_hash: str,
               run_dir_key: str, inputs: dict) -> dict:
    """One stage over one shard; returns the output table's URI and version and the stage stats."""
    from dataflux.config import load_config
    from dataflux.pipeline import with_overrides
    from dataflux.stages.annotate import run_annotate
    from dataflux.stages.filter import run_filter
    from dataflux.stages.generate import run_generate
    from dataflux.stages.ingest import run_ingest
    from dataflux.stages.publish import run_publish
    from dataflux.stages.verify import run_verify

    config = with_overrides(load_config(config_path), **overrides)
    run = RunFolder(config.out)
    get_run_logger().info("%s: starting shard %d of %d (input versions %s)", stage, shard[0] + 1, shard[1], inputs)
    progress = Progress(stage)
    sh = shard if shard[1] > 1 else None
    runner = shared_runner(config.runner, config.ray_address)
    p, t = progress.on_progress, progress.on_total
    with llm_slots(stage, config):
        if stage == "ingest":
            stats, out = run_ingest(config.source, run, runner, config.ingest, p, t), "clips"
        elif stage == "annotate":
            stats, out = run_annotate(run, runner, config.annotate, p, t, shard=sh), "annotations"
        elif stage == "generate":
            stats, out = run_generate(run, config.generate, p, t, max_rounds=config.filter.max_rounds,
                                      shard=sh), "questions"
        elif stage == "verify":
            stats, out = run_verify(run, runner, config.verify, config.annotate.tags, p, t, shard=sh), "verdicts"
        elif stage == "filter":
            stats, out = run_filter(run, config.filter, {"config_hash": config.hash()}, p, t), "kept"
        elif stage == "publish":
            stats, out = run_publish(run)[0], "corpus"
        else:
            raise ValueError(f"unknown stage {stage!r}")
    table = run.table(out)
    return {"stage": stage, "shard": f"{shard[0]}/{shard[1]}", "table": table.uri, "version": table.version(),
            "stats": stats.as_dict()}


@flow(name="dataflux-synthesize", log_prints=True)
def synthesize(config: str = "examples/demo.yaml", source: str | None = None, run_dir: str | None = None,
               runner: str | None = None, ray_address: str | None = None, shard_size: int = 2000,
               max_shards: int = 8) -> dict:
    """ingest -> annotate -> [generate -> verify -> filter] x passes -> publish; returns the corpus
    location, version and counts."""
    from dataflux.config import load_config
    from dataflux.pipeline import with_overrides

    config_path = str(Path(config).resolve())
    overrides = {k: v for k, v in dict(source=source, out=run_dir, runner=runner, ray_address=ray_address).items()
                 if v is not None}
    cfg = with_overrides(load_config(config_path), **overrides)
    if not cfg.source or not cfg.out:
        raise ValueError("synthesize needs a source and a run folder (parameters or the config's source/out)")
    overrides["out"] = str(Path(cfg.out).resolve()) if "://" not in cfg.out else cfg.out
    run = RunFolder(overrides["out"])
    with run.lock({"flow_run_id": str(prefect_flow_run.id), "command": "flow:dataflux-synthesize"}) as previous:
        settle_previous(previous)
        return _synthesize(run, cfg, config_path, overrides, shard_size, max_shards)


def _synthesize(run: RunFolder, cfg, config_path: str, overrides: dict, shard_size: int, max_shards: int) -> dict:
    from dataflux.shards import shard_count

    logger = get_run_logger()
    run.start_invocation("flow:dataflux-synthesize", {**cfg.as_dict(), "config_hash": cfg.hash()})
    corpus_before = run.table("corpus").version()
    common = dict(config_path=config_path, overrides=overrides, config_hash=cfg.hash(), run_dir_key=run.uri)
    storage = results_storage(run)
    stats: dict[str, list[dict]] = {}
    status = "failed"

    def stage(name: str, shards: int = 1) -> list[dict]:
        results = []
        for i in range(shards):  # shards of one stage write the same table: one after the other
            # ingest always lists the source again (it may have gained files); the rest follow table versions
            state = stage_task.with_options(result_storage=storage, refresh_cache=name == "ingest")(
                name, (i, shards), inputs=versions(run, READS[name]), return_state=True, **common)
            result = state.result()
            if state.name == "Cached":  # done by an earlier run: no work this time
                result = {**result, "cached": True, "stats": {**result["stats"], "rows_in": 0, "rows_out": 0,
                                                              "rejected": {}, "rejected_total": 0, "seconds": 0.0}}
            results.append(result)
        stats.setdefault(name, []).extend(results)
        return results

    try:
        stage("ingest")
        shards = shard_count(run.table("clips").num_rows(), shard_size, max_shards)
        logger.info("%d clips -> %d shard(s) of at most %d", run.table("clips").num_rows(), shards, shard_size)
        stage("annotate", shards)
        for _ in range(cfg.filter.max_rounds + 2):
            work = sum(r["stats"]["rows_in"] for r in stage("generate", shards) + stage("verify", shards)
                       + stage("filter"))
            if work == 0:
                break
        stage("publish")
        status = "completed"
    finally:
        close_runners()
        try:
            run.end_invocation({name: merged(results) for name, results in stats.items()}, status)
        except OSError:
            if status == "completed":
                raise  # otherwise the stage's error (often the same full disk) is the one to report
    for name, results in stats.items():
        stage_table(name, results)
    return announce(run, corpus_before)


def settle_previous(previous: dict | None) -> None:
    """The flow run that held this run folder before us is dead (we got the lock). If it still shows
    as running - its process was killed, or the Prefect server was unreachable when it ended - mark it
    Crashed, so the UI tells the truth."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    run_id = (previous or {}).get("flow_run_id")
    if not run_id or run_id == str(prefect_flow_run.id):
        return
    with get_client(sync_client=True) as client:
        try:
            stale = client.read_flow_run(run_id)
        except ObjectNotFound:
            return
        if stale.state is not None and not stale.state.is_final():
            client.set_flow_run_state(run_id, Crashed(message=(
                f"its process (pid {previous.get('pid')} on {previous.get('host')}) ended without reporting a final "
                f"state; found by flow run {prefect_flow_run.id}, which holds the run folder now")), force=True)
            get_run_logger().warning("flow run %s was left %s by a process that died; marked Crashed",
                                     run_id, stale.state.name)


def merged(results: list[dict]) -> dict:
    out = {"rows_in": 0, "rows_out": 0, "rejected": {}, "rejected_total": 0, "skipped": 0, "seconds": 0.0,
           "task_runs": len(results)}
    for r in results:
        s = r["stats"]
        for k in ("rows_in", "rows_out", "rejected_total", "seconds"):
            out[k] += s[k]
        for reason, n in s["rejected"].items():
            out["rejected"][reason] = out["rejected"].get(reason, 0) + n
    out["skipped"] = results[0]["stats"]["skipped"] if results else 0
    return out


def results_storage(run: RunFolder):
    """Task results live beside the run folder's tables (a local run folder) unless Prefect is told
    otherwise (PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK)."""
    from prefect.filesystems import LocalFileSystem
    from prefect.settings import get_current_settings

    import hashlib

    if get_current_settings().results.default_storage_block or run.local_path is None:
        return None
    block = LocalFileSystem(basepath=str(run.local_path / ".prefect-results"))
    name = "dataflux-results-" + hashlib.sha256(str(run.local_path).encode()).hexdigest()[:12]
    block.save(name, overwrite=True)  # cached results must point at storage the server knows
    return block


def announce(run: RunFolder, version_before: int | None) -> dict:
    """The corpus card as a markdown artifact, and `dataflux.corpus.published` for every version not
    announced yet: a local run folder remembers the last announced version (`published/.announced`),
    so a run killed between publishing and announcing has its event sent by the next run."""
    counts = run.counts()
    corpus = run.table("corpus")
    version = corpus.version()
    marker = run.local_path / "published" / ".announced" if run.local_path else None
    last = (int(marker.read_text()) if marker.exists() else None) if marker else version_before
    new_items = corpus.num_rows(version) - (corpus.num_rows(last) if last is not None else 0) \
        if version is not None else 0
    export = run.local_path / "published" / f"corpus-v{version}" if run.local_path and version is not None else None
    card = (export / "README.md").read_text() if export and (export / "README.md").exists() else ""
    result = {"corpus_uri": corpus.uri, "version": version, "export": str(export) if export else None,
              "counts": {k: v for k, v in counts.items() if k != "rejects"}, "run_dir": run.uri,
              "new_items": new_items}
    if version is not None:
        corpus_card(card, corpus.uri, version, result["export"], counts)
    if version is not None and version != last:
        emit_event("dataflux.corpus.published",
                   resource={"prefect.resource.id": f"dataflux.corpus.{Path(run.uri).name}",
                             "prefect.resource.name": corpus.uri},
                   payload=result)
        if marker:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(version))
    return result
