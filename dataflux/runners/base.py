"""What every runner shares: batching and the per-stage stats, so stages never count for themselves."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

from dataflux.stage import Result, Stage


@dataclass
class StageStats:
    stage: str
    rows_in: int = 0
    rows_out: int = 0
    skipped: int = 0  # inputs already accounted for by an earlier run into the same folder
    rejected: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, items_in: int, result: Result) -> None:
        self.rows_in += items_in
        self.rows_out += len(result.rows)
        self.rejected.update(r["reason_code"] for r in result.rejects)

    def as_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "skipped": self.skipped,
                "rejected": dict(sorted(self.rejected.items())),
                "rejected_total": sum(self.rejected.values()), "seconds": round(self.seconds, 3)}


@dataclass
class Batch:
    """A result together with how many input items produced it."""

    items_in: int
    result: Result


class Runner:
    name: str

    def run(self, stage: Stage, items: list[dict], stats: StageStats,
            post: Callable[[Result], Result] | None = None,
            on_progress: Callable[[int], None] | None = None) -> Iterator[Result]:
        """Yield one Result per batch, in input order; stats are updated as batches arrive.

        `post` is a driver-side step that sees every batch in order (deduplication, for one);
        the stats count what it returns.
        """
        missing = [f for f in stage.inputs if items and f not in items[0]]
        if missing:
            raise ValueError(f"stage {stage.name} needs input fields {missing}")
        start = time.perf_counter()
        try:
            for batch in self._execute(stage, items):
                result = post(batch.result) if post else batch.result
                stats.add(batch.items_in, result)
                if on_progress:
                    on_progress(batch.items_in)
                yield result
        finally:
            stats.seconds += time.perf_counter() - start

    def _execute(self, stage: Stage, items: list[dict]) -> Iterator[Batch]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the runtime (a no-op for the local runner)."""


def batches(items: list[dict], size: int) -> Iterator[list[dict]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
