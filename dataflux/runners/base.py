"""What every runner shares: batching, chaining and the per-stage stats (stages never count)."""

from __future__ import annotations

import platform
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from dataflux.stage import Result, Stage
from storage.tables import Table


@dataclass
class StageStats:
    stage: str
    rows_in: int = 0
    rows_out: int = 0
    skipped: int = 0  # inputs already accounted for by an earlier run into the same folder
    rejected: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # the step driver times the whole step
    extra: dict = field(default_factory=dict)  # stage-specific figures, e.g. LLM token usage and cost
    # Audio seconds processed, where the step knows them (rows with `duration_s`): in all, and per node
    # and chain entry ({node: {entry: seconds}}); the node is "local" for the in-process runner.
    audio_seconds: float = 0.0
    nodes: dict = field(default_factory=dict)

    def add(self, items_in: int, result: Result) -> None:
        self.rows_in += items_in
        self.rows_out += len(result.rows)
        self.rejected.update(r["reason_code"] for r in result.rejects)

    def add_audio(self, seconds: float, node: str = "local", entries: Sequence[str] = ("all",)) -> None:
        self.audio_seconds += seconds
        per_node = self.nodes.setdefault(node, {})
        for entry in entries:
            per_node[entry] = per_node.get(entry, 0.0) + seconds

    def throughput(self) -> dict:
        """Items/s and audio hours per wall-clock hour (the figure NeMo Curator reports), per node too."""
        if self.seconds <= 0:
            return {}
        out = {"items_per_s": round(self.rows_in / self.seconds, 3)}
        if self.audio_seconds:
            out["audio_hours"] = round(self.audio_seconds / 3600, 6)
            out["audio_hours_per_hour"] = round(self.audio_seconds / self.seconds, 3)
            out["per_node"] = {node: {entry: round(s / self.seconds, 3) for entry, s in sorted(entries.items())}
                               for node, entries in sorted(self.nodes.items())}
        return out

    def as_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "skipped": self.skipped,
                "rejected": dict(sorted(self.rejected.items())),
                "rejected_total": sum(self.rejected.values()), "seconds": round(self.seconds, 3),
                **({"audio_seconds": round(self.audio_seconds, 3), "nodes": self.nodes} if self.audio_seconds else {}),
                **self.throughput(), **self.extra}

    @classmethod
    def from_dict(cls, stage: str, d: dict) -> "StageStats":
        """The inverse of `as_dict` (stats that came back from another process as JSON)."""
        core = {"rows_in", "rows_out", "skipped", "rejected", "rejected_total", "seconds", "audio_seconds", "nodes",
                "items_per_s", "audio_hours", "audio_hours_per_hour", "per_node"}
        return cls(stage, d["rows_in"], d["rows_out"], d["skipped"], Counter(d["rejected"]), d["seconds"],
                   {k: v for k, v in d.items() if k not in core}, d.get("audio_seconds", 0.0), d.get("nodes", {}))


@dataclass(frozen=True)
class TablePass:
    """One pass of a chain over part of a table version into another table: everything a runner needs to
    read its input and write its output where the work runs (on Ray: on the workers)."""

    source: Table
    version: int
    keys: frozenset[str]  # the source's key values to process (the pending items)
    columns: tuple[str, ...]  # source columns the chain reads
    sink: Table
    finish: Callable[[list[dict]], list[dict]]  # output rows -> sink rows, where they are made (picklable)
    metadata: dict = field(default_factory=dict)  # commit metadata of the sink's commits
    chunk_rows: int = 2048  # source rows in memory at once (in-process runner)
    # Source rows -> the chain's items, where the rows are read (picklable, with an `ident` that names its
    # items for the pass id): e.g. a clip's audio joined to each of its questions. The items of a source row
    # are together and keep its key and `duration_s`. None: each source row is one item.
    expand: Callable[[pa.Table], pa.Table] | None = None

    @property
    def key(self) -> str:
        return self.source.key[0]


def audio_seconds(rows: list[dict]) -> float:
    return float(sum(r.get("duration_s") or 0.0 for r in rows))


@dataclass
class Batch:
    """A result together with how many input items produced it."""

    items_in: int
    result: Result


class Runner:
    name: str

    def run(self, stages: Stage | Sequence[Stage], items: list[dict], stats: StageStats,
            post: Callable[[Result], Result] | None = None,
            on_progress: Callable[[int], None] | None = None) -> Iterator[Result]:
        """Run a stage, or a chain of stages (each one's rows are the next one's items), over `items`.

        Yields one Result per batch, in input order; rejects from any stage of the chain are kept.
        `post` is a driver-side step that sees every batch in order (deduplication, for one); the
        stats count what it returns.
        """
        chain = [stages] if isinstance(stages, Stage) else list(stages)
        missing = [f for f in chain[0].inputs if items and f not in items[0]]
        if missing:
            raise ValueError(f"stage {chain[0].name} needs input fields {missing}")
        for batch in self._execute(chain, items):
            result = post(batch.result) if post else batch.result
            stats.add(batch.items_in, result)
            if on_progress:
                on_progress(batch.items_in)
            yield result

    def _execute(self, chain: list[Stage], items: list[dict]) -> Iterator[Batch]:
        raise NotImplementedError

    def run_pass(self, chain: Sequence[Stage], spec: TablePass, stats: StageStats, out,
                 on_progress: Callable[[int], None] | None = None) -> None:
        """Run a chain over `spec`'s pending rows of the source version; sink rows and rejects go to `out`
        (a BufferedWriter). In-process: the source streams in chunks of `chunk_rows` through `run`."""
        entries = [s.name for s in chain]
        for chunk in spec.source.scan(list(spec.columns), (spec.key, set(spec.keys)), spec.chunk_rows,
                                      version=spec.version):
            seconds = pc.sum(chunk["duration_s"]).as_py() if "duration_s" in chunk.column_names else None
            stats.add_audio(float(seconds or 0.0), platform.node() or "local", entries)
            items = (spec.expand(chunk) if spec.expand else chunk).to_pylist()
            for result in self.run(chain, items, stats, on_progress=on_progress):
                out.add(Result(spec.finish(result.rows), result.rejects))

    def close(self) -> None:
        """Release the runtime (a no-op for the local runner)."""


def batches(items: list[dict], size: int) -> Iterator[list[dict]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run_chain(chain: Sequence[Stage], items: list[dict]) -> Result:
    """One batch through every stage of a chain, in-process."""
    rows, rejects = items, []
    for stage in chain:
        if not rows:
            break
        result = stage.process_batch(rows)
        rows = result.rows
        rejects.extend(result.rejects)
    return Result(rows, rejects)
