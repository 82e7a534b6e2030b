"""Run the DataFlux stages into a run folder. Later stages append themselves to STAGES."""

from __future__ import annotations

import dataclasses
from typing import Callable

from dataflux.config import RunConfig
from dataflux.runners import make_runner
from dataflux.runners.base import StageStats
from dataflux.stages.annotate import run_annotate
from dataflux.stages.generate import run_generate
from dataflux.stages.ingest import run_ingest
from storage.run_folder import RunFolder

STAGES = ("ingest", "annotate", "generate")

ProgressFactory = Callable[[str], tuple[Callable[[int], None], Callable[[int], None]]]


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
    run = RunFolder(config.out)
    run.start_invocation(command, {**config.as_dict(), "config_hash": config.hash(), "until": until})
    runner = make_runner(config.runner, config.ray_address)
    stats: dict[str, StageStats] = {}
    status = "failed"
    try:
        steps = {"ingest": lambda p, t: run_ingest(config.source, run, runner, config.ingest, p, t),
                 "annotate": lambda p, t: run_annotate(run, runner, config.annotate, p, t),
                 "generate": lambda p, t: run_generate(run, config.generate, p, t)}
        for name in STAGES[:STAGES.index(until) + 1]:
            on_progress, on_total = progress(name) if progress else (None, None)
            stats[name] = steps[name](on_progress, on_total)
        status = "completed"
    finally:
        runner.close()
        info = run.end_invocation({name: s.as_dict() for name, s in stats.items()}, status)
    return info


def with_overrides(config: RunConfig, **overrides) -> RunConfig:
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
