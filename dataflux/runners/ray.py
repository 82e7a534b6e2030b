"""Ray Data runner: a stage becomes an actor pool (`map_batches` with a callable class).

Each actor calls `setup` once, so models load once per actor. Resources come from the stage's
declaration, so on a cluster GPU stages land on GPU workers. Results travel back to the driver as
Arrow IPC buffers (rows and rejects), in input order, and only the driver commits to the tables.
`ray.init(address=...)` is the only difference between a laptop and a cluster.
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import pyarrow as pa

from dataflux.runners.base import Batch, Runner
from dataflux.stage import Result, Stage
from storage.schemas import REJECTS, TABLES, conform


class RayRunner(Runner):
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.address = address
        self.num_cpus = num_cpus
        self._started_here = False

    def _ensure_ray(self):
        import ray

        if not ray.is_initialized():
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            kwargs = dict(address=self.address, include_dashboard=False, log_to_driver=False,
                          configure_logging=False)
            if self.address is None and self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
            self._started_here = True
            ray.data.DataContext.get_current().enable_progress_bars = False
        return ray

    def _execute(self, stage: Stage, items: list[dict]) -> Iterator[Batch]:
        if not items:
            return
        ray = self._ensure_ray()
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # driver-side steps (dedup) need input order
        res = stage.resources
        ds = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / res.batch_size)))
        out = ds.map_batches(
            _StageActor, fn_constructor_args=(stage,), batch_size=res.batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=res.concurrency), num_cpus=res.num_cpus,
            num_gpus=res.num_gpus or None, zero_copy_batch=True)
        for row in out.iter_rows():
            rows = _from_ipc(row["rows"]).to_pylist()
            rejects = _from_ipc(row["rejects"]).to_pylist()
            yield Batch(int(row["items_in"]), Result(rows, rejects))

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False


class _StageActor:
    def __init__(self, stage: Stage):
        self.stage = stage
        self.schema = TABLES[stage.output_table][0]
        stage.setup()

    def __call__(self, batch: pa.Table) -> dict:
        items = batch.to_pylist()
        result = self.stage.process_batch(items)
        return {"items_in": [len(items)],
                "rows": [_to_ipc(conform(result.rows, self.schema))],
                "rejects": [_to_ipc(conform(result.rejects, REJECTS))]}

    def __del__(self):
        self.stage.teardown()


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()
