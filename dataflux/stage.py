"""The stage contract (DESIGN section 4).

A stage declares what it reads and writes and what it needs (CPUs, GPUs, batch size, concurrency),
and implements `setup` / `process_batch` / `teardown`. Heavy imports and model loads belong in
`setup`, which runs once per worker, so the driver stays light. Runners own the loop and the stats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Resources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 16
    concurrency: int = 1  # workers (Ray actors) for this stage
    custom: dict[str, float] = field(default_factory=dict)  # Ray custom resources, e.g. {"accel": 1}


@dataclass
class Result:
    """What one batch produced: rows for the output table, and rejects with their reasons."""

    rows: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)


class Stage:
    name: ClassVar[str]
    version: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]]  # fields each input item must carry

    def __init__(self, resources: Resources | None = None):
        self.resources = resources or Resources()

    @property
    def producer(self) -> str:
        return f"{self.name}@{self.version}"

    def setup(self) -> None:
        """Load models and heavy imports; called once per worker before the first batch."""

    def process_batch(self, items: list[dict]) -> Result:
        raise NotImplementedError

    def teardown(self) -> None:
        """Release what `setup` acquired."""

    def reject(self, item_id: str, reason_code: str, detail: str, source: str = "") -> dict:
        return {"item_id": item_id, "stage": self.name, "reason_code": reason_code, "detail": detail,
                "source": source, "producer": self.producer}
