"""The step driver: what every pipeline step repeats, written once.

A step (ingest, annotate, generate, verify, filter, publish) says three narrow things: which items it
owes (`candidates`), which of them are already accounted for (`done`: a row in its output table or a
reject of its own), and how to process the rest (`process`). `run_step` owns the rest: the shard, the
resume (skipping what is done), progress, the buffered writer for the output table and the rejects,
timing and the stats. So a re-run, a crash recovery and a sharded run all behave the same way in every
step, and a new step cannot forget one of them.

Items are rows of an Arrow table with only the columns the step needs, never a whole table as Python
dicts (at 100k clips that would be gigabytes in the flow process); a step turns a bounded chunk of them
into dicts where its work needs them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, ClassVar

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from dataflux.runners.base import Runner, StageStats
from dataflux.shards import Shard, in_shard
from storage.run_folder import RunFolder
from storage.writer import BufferedWriter


@dataclass
class Context:
    """Where a step runs: the run folder, the runner for its chains, its shard and progress callbacks."""

    run: RunFolder
    runner: Runner | None = None
    shard: Shard | None = None
    on_progress: Callable[[int], None] | None = None
    on_total: Callable[[int], None] | None = None

    def progress(self, n: int) -> None:
        if self.on_progress:
            self.on_progress(n)


class Step:
    """One pipeline step. Subclasses hold their config and fill in `candidates` and `process`."""

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]]  # tables whose versions decide what the step does (cache keys)
    writes: ClassVar[str]  # the output table
    done_column: ClassVar[str]  # the output table's column that holds an item's key
    commit_rows: ClassVar[int | None] = 256  # rows + rejects buffered per commit; None: the step commits itself

    def candidates(self, ctx: Context) -> pa.Table:
        """Every item this step owes in the run folder (before the shard and the resume are applied), one
        row per item, with the columns `keys` and `clip_ids` read."""
        raise NotImplementedError

    def keys(self, items: pa.Table) -> pa.Array:
        """Each item's key: what `done` holds once the item is accounted for."""
        return items[self.done_column]

    def clip_ids(self, items: pa.Table) -> pa.Array:
        """The clip each item belongs to: what shards split on."""
        return items["clip_id"]

    def done(self, ctx: Context) -> pa.ChunkedArray:
        """Keys already accounted for: rows of the output table, and this step's rejects."""
        table = ctx.run.table(self.writes)
        written = table.read(columns=[self.done_column])[self.done_column]
        return pa.chunked_array([*written.chunks, *ctx.run.rejects(self.name, ["item_id"])["item_id"].chunks],
                                pa.string())

    def process(self, ctx: Context, pending: pa.Table, stats: StageStats, out: BufferedWriter | None) -> None:
        """Do the work for `pending` (never empty): write results to `out`, count them in `stats`."""
        raise NotImplementedError

    def finish(self, ctx: Context, stats: StageStats) -> None:
        """Runs after `process`, and also when nothing was pending (e.g. an export a crash left unwritten)."""


def run_step(step: Step, ctx: Context) -> StageStats:
    """Run `step` over what it owes in `ctx.shard` and has not accounted for yet."""
    start = time.perf_counter()
    items = step.candidates(ctx)
    if ctx.shard is not None:
        ids = step.clip_ids(items).to_pylist()
        items = items.filter(pa.array([in_shard(c, ctx.shard) for c in ids], pa.bool_()))
    done = step.done(ctx)
    pending = items.filter(pc.invert(pc.is_in(step.keys(items), value_set=done))) if len(done) else items
    stats = StageStats(step.name, skipped=items.num_rows - pending.num_rows)
    if ctx.on_total:
        ctx.on_total(pending.num_rows)
    if pending.num_rows:
        if step.commit_rows is None:
            step.process(ctx, pending, stats, None)
        else:
            with BufferedWriter(ctx.run, step.writes, {"stage": step.name}, max_rows=step.commit_rows) as out:
                step.process(ctx, pending, stats, out)
    step.finish(ctx, stats)
    stats.seconds = time.perf_counter() - start
    if stats.rows_in:
        record_stats(ctx, stats)
    return stats


def record_stats(ctx: Context, stats: StageStats) -> None:
    """Each step's latest stats as `RUN_DIR/stats/<step>[.<shard>of<n>].json`, so that publish's data card
    can show the throughput of steps of the same invocation (run.json gets them only at its end)."""
    shard = f".{ctx.shard[0] + 1}of{ctx.shard[1]}" if ctx.shard else ""
    path = f"{ctx.run.uri.rstrip('/')}/stats/{stats.stage}{shard}.json"
    with fsspec.open(path, "w", auto_mkdir=True, **(ctx.run.storage_options or {})) as f:
        json.dump(stats.as_dict(), f, sort_keys=True)

