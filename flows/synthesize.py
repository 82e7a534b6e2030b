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

from dataflux.history import backfill, history
from flows.alerts import check_quality
from flows.artifacts import Progress, corpus_card, corpus_history, stage_table
from flows.quotas import llm_slots
from flows.results import SERIALIZER, results_storage
from storage.run_folder import RunFolder

_RUNNERS: dict = {}


def shared_runner(kind: str, address: str | None, auth_token_env: str | None = None):
    """One runner per flow process: a Ray runtime starts once, not once per task."""
    from dataflux.runners import make_runner

    if (kind, address) not in _RUNNERS:
        _RUNNERS[(kind, address)] = make_runner(kind, address, auth_token_env=auth_token_env)
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


@task(name="stage", cache_key_fn=cache_key, persist_result=True, result_serializer=SERIALIZER, retries=2,
      retry_delay_seconds=[5, 30], retry_jitter_factor=0.5, task_run_name="{stage}[{shard[0]}/{shard[1]}]")
def stage_task(stage: str, shard: tuple[int, int], config_path: str, overrides: dict, config_hash: str,
               run_dir_key: str, inputs: dict) -> dict:
    """One step of the pipeline table over one shard; returns the output table's URI and version and
    the step's stats (JSON: the result is persisted as JSON)."""
    from dataflux.config import load_config
    from dataflux.pipeline import entry
    from dataflux.step import Context, run_step

    config = load_config(config_path, overrides)
    run = RunFolder(config.out)
    get_run_logger().info("%s: starting shard %d of %d (input versions %s)", stage, shard[0] + 1, shard[1], inputs)
    progress = Progress(stage)
    step = entry(stage).build(config)
    runner = shared_runner(config.runner, config.ray_address, config.ray_auth_token_env)
    context = Context(run, runner, shard if shard[1] > 1 else None, progress.on_progress, progress.on_total)
    with llm_slots(stage, config):
        stats = run_step(step, context)
    table = run.table(step.writes)
    return {"stage": stage, "shard": f"{shard[0]}/{shard[1]}", "table": table.uri, "version": table.version(),
            "stats": stats.as_dict()}


@flow(name="dataflux-synthesize", log_prints=True, result_serializer=SERIALIZER)
def synthesize(config: str = "examples/demo.yaml", source: str | None = None, run_dir: str | None = None,
               runner: str | None = None, ray_address: str | None = None, shard_size: int = 2000,
               max_shards: int = 8, overrides: list[str] | None = None, quality_bounds: dict | None = None,
               secrets: dict[str, str] | None = None) -> dict:
    """ingest -> annotate -> [generate -> verify -> filter] x passes -> publish; returns the corpus
    location, version and counts. `overrides` are `section.key=value` settings, as `dataflux run --set`
    takes them; the other parameters win over them. A bad config fails the run at once, naming the key.
    `quality_bounds` (dataflux.history.QualityBounds) decide when a new corpus version is a regression.
    `secrets` maps environment variables (the config's `api_key_env`) to Prefect Secret block names."""
    from dataflux.config import load_config
    from dataflux.settings import parse_assignments
    from flows.secrets import resolve_secrets

    resolve_secrets(secrets)

    config_path = str(Path(config).resolve())
    values = {**parse_assignments(overrides or []),
              **{k: v for k, v in dict(source=source, out=run_dir, runner=runner, ray_address=ray_address).items()
                 if v is not None}}
    cfg = load_config(config_path, values)
    if not cfg.source or not cfg.out:
        raise ValueError("synthesize needs a source and a run folder (parameters or the config's source/out)")
    values["out"] = str(Path(cfg.out).resolve()) if "://" not in cfg.out else cfg.out
    if quality_bounds:
        from dataflux.history import QualityBounds

        QualityBounds(**quality_bounds)  # a bad bound fails the run before any work
    return _synthesize(RunFolder(values["out"]), cfg, config_path, values, shard_size, max_shards, quality_bounds)


def _synthesize(run: RunFolder, cfg, config_path: str, overrides: dict, shard_size: int, max_shards: int,
                quality_bounds: dict | None = None) -> dict:
    """Walk the pipeline table (dataflux.pipeline.walk); each step runs as one task per shard."""
    from dataflux.pipeline import STAGES, invocation, merge, walk
    from dataflux.runners.base import StageStats
    from dataflux.shards import shard_count

    logger = get_run_logger()
    corpus_before = None
    common = dict(config_path=config_path, overrides=overrides, config_hash=cfg.hash(), run_dir_key=run.uri)
    storage = results_storage(run.local_path)
    results: dict[str, list[dict]] = {}
    shards = 1

    def execute(e) -> StageStats:
        nonlocal shards
        stats = None
        for i in range(shards if e.sharded else 1):  # shards of one step write the same table: one after the other
            # ingest always lists the source again (it may have gained files); the rest follow table versions
            state = stage_task.with_options(result_storage=storage, refresh_cache=e.name == "ingest")(
                e.name, (i, shards if e.sharded else 1), inputs=versions(run, e.build(cfg).reads),
                return_state=True, **common)
            result = state.result()
            if state.name == "Cached":  # done by an earlier run: no work this time
                result = {**result, "cached": True, "stats": {**result["stats"], "rows_in": 0, "rows_out": 0,
                                                              "rejected": {}, "rejected_total": 0, "seconds": 0.0}}
            results.setdefault(e.name, []).append(result)
            stats = merge(stats, StageStats.from_dict(e.name, result["stats"]))
        stats.extra["task_runs"] = len(results[e.name])
        if e.name == "ingest":
            clips = run.table("clips").num_rows()
            shards = shard_count(clips, shard_size, max_shards)
            logger.info("%d clips -> %d shard(s) of at most %d", clips, shards, shard_size)
        return stats

    owner = {"flow_run_id": str(prefect_flow_run.id)}

    def waiting(why: str) -> None:
        logger.info("%s: waiting for it (one flow run per run folder; runs into other folders go ahead)", why)

    try:
        # One flow run per run folder, queued on the folder's own lock (the OS frees it when a holder dies):
        # a second run into the folder waits here, before touching it, instead of failing.
        with invocation(run, cfg, "flow:dataflux-synthesize", owner, wait_s=None, on_wait=waiting) as inv:
            corpus_before = run.table("corpus").version()  # read once the folder is ours
            settle_previous(inv.previous)
            walk(cfg, STAGES, execute, inv.stats)
    finally:
        close_runners()
    for name, shard_results in results.items():
        stage_table(name, shard_results)
    return announce(run, corpus_before, quality_bounds)


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


def announce(run: RunFolder, version_before: int | None, quality_bounds: dict | None = None) -> dict:
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
        backfill(run)  # versions published before corpus_history existed
        if run.table("corpus_history").exists():
            corpus_history(history(run).to_pylist())
    if version is not None and version != last:
        result["regressions"] = check_quality(run, version, quality_bounds)
        emit_event("dataflux.corpus.published",
                   resource={"prefect.resource.id": f"dataflux.corpus.{Path(run.uri).name}",
                             "prefect.resource.name": corpus.uri},
                   payload=result)
        if marker:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(version))
    return result
