"""In-process runner: the same stage code as on Ray, in a plain loop. Good for tests and laptops."""

from __future__ import annotations

from typing import Iterator

from dataflux.runners.base import Batch, Runner, batches
from dataflux.stage import Stage


class LocalRunner(Runner):
    name = "local"

    def _execute(self, stage: Stage, items: list[dict]) -> Iterator[Batch]:
        if not items:
            return
        stage.setup()
        try:
            for chunk in batches(items, stage.resources.batch_size):
                yield Batch(len(chunk), stage.process_batch(chunk))
        finally:
            stage.teardown()
