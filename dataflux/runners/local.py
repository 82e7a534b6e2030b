"""In-process runner: the same stage code as on Ray, in a plain loop. Good for tests and laptops."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Iterator

from dataflux.runners.base import Batch, Runner, batches, run_chain
from dataflux.stage import Stage


class LocalRunner(Runner):
    name = "local"

    def _execute(self, chain: list[Stage], items: list[dict]) -> Iterator[Batch]:
        if not items:
            return
        with ExitStack() as stack:
            for stage in chain:
                stage.setup()
                stack.callback(stage.teardown)
            for chunk in batches(items, chain[0].resources.batch_size):
                yield Batch(len(chunk), run_chain(chain, chunk))
