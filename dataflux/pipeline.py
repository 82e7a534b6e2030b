"""The DataFlux pipeline, declared once:

    ingest -> annotate -> [generate -> verify -> filter] x rounds -> publish

`STEPS` is the one table of steps; `walk` runs it (with the closed loop) and `invocation` holds the run
folder and records the invocation in run.json. `run_pipeline` walks it in this process; the Prefect
flow (`flows/synthesize.py`) walks the same table, only putting each step's shards in tasks.

The bracketed part is the closed loop: each pass writes the questions still owed (round 0, and the
rounds that fixable rejects asked for), verifies and filters them; it stops when a pass finds nothing
to do, and the rounds are bounded by `filter.max_rounds`, so it always ends.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from dataflux.config import RunConfig
from dataflux.runners import make_runner
from dataflux.runners.base import StageStats
from dataflux.stages.annotate import Annotate
from dataflux.stages.filter import Filter
from dataflux.stages.generate import Generate
from dataflux.stages.ingest import Ingest
from dataflux.stages.publish import Publish
from dataflux.stages.verify import Verify
from dataflux.step import Context, Step, run_step
from storage.run_folder import RunFolder


@dataclass(frozen=True)
class Entry:
    """One row of the pipeline table. The step's class says what it reads and writes; `build` says which
    config sections it takes; `sharded` steps split their work by clip; `loop` steps form the closed loop."""

    name: str
    build: Callable[[RunConfig], Step]
    sharded: bool
    loop: bool


STEPS: tuple[Entry, ...] = (
    Entry("ingest", lambda c: Ingest(c.source, c.ingest), sharded=False, loop=False),
    Entry("annotate", lambda c: Annotate(c.annotate), sharded=True, loop=False),
    Entry("generate", lambda c: Generate(c.generate, c.filter.max_rounds), sharded=True, loop=True),
    Entry("verify", lambda c: Verify(c.verify, c.annotate.tags), sharded=True, loop=True),
    Entry("filter", lambda c: Filter(c.filter, {"config_hash": c.hash()}), sharded=False, loop=True),
    Entry("publish", lambda c: Publish(), sharded=False, loop=False),
)
STAGES = tuple(e.name for e in STEPS)
ProgressFactory = Callable[[str], tuple[Callable[[int], None], Callable[[int], None]]]


def entry(name: str) -> Entry:
    for e in STEPS:
        if e.name == name:
            return e
    raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")


def merge(a: StageStats | None, b: StageStats) -> StageStats:
    """Add one shard's or one closed-loop pass's stats to the earlier ones (`skipped` is the first's)."""
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


def walk(config: RunConfig, wanted: tuple[str, ...], execute: Callable[[Entry], StageStats],
         stats: dict[str, StageStats]) -> None:
    """Run the wanted steps in table order, the loop steps as the closed loop; `execute` runs one step
    once (over all its shards) and returns its stats. Fills `stats` as steps finish, so a failure
    still leaves what was done for run.json."""
    loop = [e for e in STEPS if e.loop and e.name in wanted]
    for e in STEPS:
        if e.name not in wanted:
            continue
        if not e.loop:
            stats[e.name] = execute(e)
        elif e is loop[0]:
            passes = closed_loop({e.name: (lambda e=e: execute(e)) for e in loop}, config.filter.max_rounds, stats)
            stats[e.name].extra["loop_passes"] = passes


@dataclass
class Invocation:
    previous: dict | None  # the lock's previous holder (a run that died holding it, or None)
    stats: dict[str, StageStats] = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # run.json after the invocation ended


@contextmanager
def invocation(run: RunFolder, config: RunConfig, command: str, owner: dict | None = None,
               until: str | None = None, wait_s: float | None = 0.0,
               on_wait: Callable[[str], None] | None = None) -> Iterator[Invocation]:
    """Hold the run folder and record this invocation in run.json: started, then completed or failed
    with the stats of the steps that ran. A failure to write run.json at the end (often the same full
    disk that failed a step) does not hide the step's own error. A folder another live run holds is
    refused at once, or waited for (`wait_s`, None: as long as it takes; see RunFolder.lock)."""
    with run.lock({"command": command, **(owner or {})}, wait_s, on_wait) as previous:
        run.start_invocation(command, {**config.as_dict(), "config_hash": config.hash(),
                                       "until": until or STAGES[-1]})
        inv = Invocation(previous)
        status = "failed"
        try:
            yield inv
            status = "completed"
        finally:
            try:
                inv.info = run.end_invocation({name: s.as_dict() for name, s in inv.stats.items()}, status)
            except OSError:
                if status == "completed":
                    raise


def wanted_steps(until: str | None) -> tuple[str, ...]:
    return STAGES[:STAGES.index(entry(until or STAGES[-1]).name) + 1]


def run_pipeline(config: RunConfig, until: str | None = None, command: str = "run",
                 progress: ProgressFactory | None = None) -> dict:
    """Run the stages up to `until` (all by default) in this process; return run.json's content."""
    if not config.source:
        raise ValueError("no source: give --source or set `source:` in the config")
    if not config.out:
        raise ValueError("no run folder: give --out or set `out:` in the config")
    wanted = wanted_steps(until)
    run = RunFolder(config.out)
    with invocation(run, config, command, until=wanted[-1]) as inv:
        runner = make_runner(config.runner, config.ray_address, auth_token_env=config.ray_auth_token_env)
        try:
            def execute(e: Entry) -> StageStats:
                on_progress, on_total = progress(e.name) if progress else (None, None)
                return run_step(e.build(config), Context(run, runner, None, on_progress, on_total))

            walk(config, wanted, execute, inv.stats)
        finally:
            runner.close()
    return inv.info
