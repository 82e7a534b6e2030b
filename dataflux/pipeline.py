"""Run the DataFlux stages into a run folder:

    ingest -> annotate -> [generate -> verify -> filter] x rounds -> publish

The bracketed part is the closed loop: each pass writes the questions still owed (round 0, and the
rounds that fixable rejects asked for), verifies and filters them; it stops when a pass finds nothing
to do, and the rounds are bounded by `filter.max_rounds`, so it always ends.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from dataflux.config import RunConfig
from dataflux.runners import make_runner
from dataflux.runners.base import StageStats
from dataflux.stages.annotate import run_annotate
from dataflux.stages.filter import run_filter
from dataflux.stages.generate import run_generate
from dataflux.stages.ingest import run_ingest
from dataflux.stages.publish import run_publish
from dataflux.stages.verify import run_verify
from storage.run_folder import RunFolder

STAGES = ("ingest", "annotate", "generate", "verify", "filter", "publish")
LOOP = ("generate", "verify", "filter")

ProgressFactory = Callable[[str], tuple[Callable[[int], None], Callable[[int], None]]]


def merge(a: StageStats | None, b: StageStats) -> StageStats:
    """Add one closed-loop pass's stats to the earlier passes' (a stage's `skipped` is its first pass's)."""
    if a is None:
        return b
    a.rows_in += b.rows_in
    a.rows_out += b.rows_out
    a.rejected.update(b.rejected)
    a.seconds += b.seconds
    a.extra.update(b.extra)
    return a


def closed_loop(steps: dict[str, Callable[[], StageStats]], rounds: int, stats: dict[str, StageStats]) -> list[dict]:
    """Run the steps in order, pass after pass, until a pass finds no work; at most `rounds` + 2 passes
    (one per round, and the last that finds nothing). Adds each pass's stats to `stats`; returns what
    each pass did."""
    passes = []
    for _ in range(rounds + 2):
        done = {name: step() for name, step in steps.items()}
        for name, s in done.items():
            stats[name] = merge(stats.get(name), s)
        passes.append({name: {"in": s.rows_in, "out": s.rows_out, "rejected": s.rejected.total()}
                       for name, s in done.items()})
        if sum(s.rows_in for s in done.values()) == 0:
            break
    return passes


def run_pipeline(config: RunConfig, until: str | None = None, command: str = "run",
                 progress: ProgressFactory | None = None) -> dict:
    """Run the stages up to `until` (all by default); return run.json's content."""
    if not config.source:
        raise ValueError("no source: give --source or set `source:` in the config")
    if not config.out:
        raise ValueError("no run folder: give --out or set `out:` in the config")
    until = until or STAGES[-1]
    if until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; stages are {', '.join(STAGES)}")
    wanted = STAGES[:STAGES.index(until) + 1]
    run = RunFolder(config.out)
    with run.lock({"command": command}):
        return _run(config, run, wanted, command, progress)


def _run(config: RunConfig, run: RunFolder, wanted: tuple[str, ...], command: str,
         progress: ProgressFactory | None) -> dict:
    run.start_invocation(command, {**config.as_dict(), "config_hash": config.hash(), "until": wanted[-1]})
    runner = make_runner(config.runner, config.ray_address)
    stats: dict[str, StageStats] = {}
    status = "failed"
    rounds = config.filter.max_rounds
    lineage = {"config_hash": config.hash()}

    def bars(name):
        return progress(name) if progress else (None, None)

    try:
        steps = {"ingest": lambda p, t: run_ingest(config.source, run, runner, config.ingest, p, t),
                 "annotate": lambda p, t: run_annotate(run, runner, config.annotate, p, t),
                 "generate": lambda p, t: run_generate(run, config.generate, p, t, max_rounds=rounds),
                 "verify": lambda p, t: run_verify(run, runner, config.verify, config.annotate.tags, p, t),
                 "filter": lambda p, t: run_filter(run, config.filter, lineage, p, t)}
        for name in wanted[:2]:
            stats[name] = steps[name](*bars(name))
        loop = {name: (lambda name=name: steps[name](*bars(name))) for name in LOOP if name in wanted}
        passes = closed_loop(loop, rounds, stats)
        if "generate" in stats:
            stats["generate"].extra["loop_passes"] = passes
        if "publish" in wanted:
            stats["publish"], _ = run_publish(run)
        status = "completed"
    finally:
        runner.close()
        try:
            info = run.end_invocation({name: s.as_dict() for name, s in stats.items()}, status)
        except OSError:
            if status == "completed":
                raise
            info = {}  # run.json cannot be written either (a full disk): the stage's error is the one to see
    return info


def with_overrides(config: RunConfig, **overrides) -> RunConfig:
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
