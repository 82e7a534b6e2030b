"""Ray Data runner: each stage of a chain becomes an actor pool (`map_batches` with a callable class).

Each actor calls `setup` once, so models load once per actor. Resources come from the stage's
declaration (CPUs, GPUs, batch size, concurrency), so on a cluster GPU stages land on GPU workers.
Rejects ride along the chain as marker rows that later stages pass through untouched; each output
row also carries how many input items it accounts for. Results come back to the driver in input
order, and only the driver commits to the tables. `ray.init(address=...)` is the only difference
between a laptop and a cluster.
"""

from __future__ import annotations

import json
import math
import os
from typing import Iterator

import pyarrow as pa

from dataflux.runners.base import Batch, Runner
from dataflux.stage import Result, Stage

REJECT = "_reject"  # JSON of a reject, on marker rows
ITEMS_IN = "_items_in"  # input items this row accounts for (the batch's count on its first row)


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
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True  # driver-side steps (dedup) need input order
        return ray

    def _execute(self, chain: list[Stage], items: list[dict]) -> Iterator[Batch]:
        if not items:
            return
        ray = self._ensure_ray()
        first = chain[0].resources
        ds = ray.data.from_items([{**item, ITEMS_IN: 1} for item in items],
                                 override_num_blocks=max(1, math.ceil(len(items) / first.batch_size)))
        for stage in chain:
            res = stage.resources
            ds = ds.map_batches(
                _StageActor, fn_constructor_args=(stage,), batch_size=res.batch_size, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=res.concurrency), num_cpus=res.num_cpus,
                num_gpus=res.num_gpus or None, zero_copy_batch=True)
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            rows, rejects, items_in = [], [], 0
            for row in table.to_pylist():
                items_in += row.pop(ITEMS_IN) or 0
                marker = row.get(REJECT)
                if marker:
                    rejects.append(json.loads(marker))
                else:
                    row.pop(REJECT, None)
                    rows.append(row)
            yield Batch(items_in, Result(rows, rejects))

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False


class _StageActor:
    def __init__(self, stage: Stage):
        self.stage = stage
        stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        items_in = sum(row.pop(ITEMS_IN) or 0 for row in rows)
        live = [r for r in rows if not r.get(REJECT)]
        passed = [{REJECT: r[REJECT]} for r in rows if r.get(REJECT)]
        for r in live:
            r.pop(REJECT, None)
        result = self.stage.process_batch(live) if live else Result()
        out = result.rows + [{REJECT: json.dumps(r)} for r in result.rejects] + passed
        if not out:
            return pa.table({ITEMS_IN: pa.array([], pa.int64()), REJECT: pa.array([], pa.string())})
        for r in out:
            r[ITEMS_IN] = 0
            r.setdefault(REJECT, None)
        out[0][ITEMS_IN] = items_in
        table = pa.Table.from_pylist(out)
        # Every block carries the marker column with one type, or Ray's schema unification drops it.
        return table.set_column(table.column_names.index(REJECT), REJECT, table[REJECT].cast(pa.string()))

    def __del__(self):
        self.stage.teardown()
