"""What every runner shares: batching, chaining and the per-stage stats (stages never count)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from dataflux.stage import Result, Stage


@dataclass
class StageStats:
    stage: str
    rows_in: int = 0
    rows_out: int = 0
    skipped: int = 0  # inputs already accounted for by an earlier run into the same folder
    rejected: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # the step driver times the whole step
    extra: dict = field(default_factory=dict)  # stage-specific figures, e.g. LLM token usage and cost

    def add(self, items_in: int, result: Result) -> None:
        self.rows_in += items_in
        self.rows_out += len(result.rows)
        self.rejected.update(r["reason_code"] for r in result.rejects)

    def as_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "skipped": self.skipped,
                "rejected": dict(sorted(self.rejected.items())),
                "rejected_total": sum(self.rejected.values()), "seconds": round(self.seconds, 3), **self.extra}

    @classmethod
    def from_dict(cls, stage: str, d: dict) -> "StageStats":
        """The inverse of `as_dict` (stats that came back from another process as JSON)."""
        core = {"rows_in", "rows_out", "skipped", "rejected", "rejected_total", "seconds"}
        return cls(stage, d["rows_in"], d["rows_out"], d["skipped"], Counter(d["rejected"]), d["seconds"],
                   {k: v for k, v in d.items() if k not in core})


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
