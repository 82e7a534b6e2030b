"""Ray Data runner: each stage of a chain becomes an actor pool (`map_batches` with a callable class).

Each actor calls `setup` once, so models load once per actor. Resources come from the stage's
declaration (CPUs, GPUs, batch size, concurrency), so on a cluster GPU stages land on GPU workers.
Rejects ride along the chain as marker rows that later stages pass through untouched; each output
row also carries how many input items it accounts for. `ray.init(address=...)` is the only difference
between a laptop and a cluster.

Two ways in and out. `run` takes items from the driver and brings results back in input order (for
steps whose items are small: source paths, questions). `run_pass` moves no data through the driver:
the workers read the pending rows of the input table's version straight from its Parquet files, and
write the output rows as Parquet files into the output table's folder; the driver gets back file names,
counts and rejects, and commits exactly those files in one Delta transaction keyed on the pass (a
second commit of the same pass is a no-op; files of a pass that never committed are deleted).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataflux.runners.base import Batch, Runner, StageStats, TablePass
from dataflux.stage import Result, Stage
from storage.schemas import conform
from storage.tables import PASS_FILE_PREFIX, Table

log = logging.getLogger(__name__)

REJECT = "_reject"  # JSON of a reject, on marker rows
ITEMS_IN = "_items_in"  # input items this row accounts for (the batch's count on its first row)
AUDIO_S = "_audio_s"  # audio seconds of those items (in a table pass)
TRACE = "_trace"  # the chain entries that processed the batch and their nodes: "entry@node,..."
EMPTY = "_empty"  # a placeholder row that only carries a batch's counts (the batch produced nothing)
CARRIED = (ITEMS_IN, AUDIO_S)  # summed over a batch onto its first row
CONNECT_TIMEOUT_S = 45.0  # joining a cluster: fail with one clear line rather than hang
PASS_ATTEMPTS = 2  # a pass that failed (a node died and Ray gave up) runs once more from its files


class RayConnectError(ValueError):
    """The Ray cluster at the given address cannot be joined (unreachable, refusing, or auth refused): a bad
    `--ray-address` or token, reported in one line like any other bad argument."""


class RayRunner(Runner):
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, auth_token_env: str | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self.address = address
        self.num_cpus = num_cpus
        self.auth_token_env = auth_token_env  # the variable holding the cluster's token (never the token)
        self.connect_timeout_s = connect_timeout_s
        self._started_here = False

    def _ensure_ray(self):
        import ray

        if not ray.is_initialized():
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            kwargs = dict(address=self.address, include_dashboard=False, log_to_driver=False,
                          configure_logging=False)
            if self.address is None and self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            if self.address:
                self._join(ray, kwargs)
            else:  # "local": a new instance, never whichever cluster this machine ran last
                ray.init(**{**kwargs, "address": "local"})
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
                num_gpus=res.num_gpus or None, resources=res.custom or None, zero_copy_batch=True)
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            rows, rejects, items_in = [], [], 0
            for row in table.to_pylist():
                items_in += row.pop(ITEMS_IN) or 0
                marker = row.get(REJECT)
                if marker:
                    rejects.append(json.loads(marker))
                elif not row.pop(EMPTY, None):
                    row.pop(REJECT, None)
                    rows.append(row)
            yield Batch(items_in, Result(rows, rejects))

    def _join(self, ray, kwargs: dict) -> None:
        """Connect to a running cluster, or fail within `connect_timeout_s` with one line that says why."""
        if self.auth_token_env:
            token = os.environ.get(self.auth_token_env)
            if not token:
                raise RayConnectError(f"ray_auth_token_env names {self.auth_token_env}, which is not set")
            os.environ["RAY_AUTH_TOKEN"] = token  # Ray's driver reads its token from here
        if "RAY_AUTH_MODE" not in os.environ:
            # A driver that joins sends a token only in token mode; clusters started with `ray start` turn it
            # on by default. The token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.
            from ray._private.authentication.authentication_token_setup import (
                maybe_enable_token_auth_if_token_available)

            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        where = self.address
        host, _, port = where.rpartition(":")
        if _loopback(host):
            # A cluster on this machine's loopback: Ray would rewrite 127.0.0.1 to the machine's outward
            # address (where such a cluster does not listen) and then wait for it for minutes. The driver
            # takes the cluster's own loopback address as its node address (Ray looks for a raylet there).
            import ray._private.ray_constants as ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
            kwargs["_node_ip_address"] = "127.0.0.1" if host in ("localhost", "::1", "[::1]") else host
        if "://" not in where and where != "auto" and port.isdigit():
            try:
                socket.create_connection((host, int(port)), timeout=min(10.0, self.connect_timeout_s)).close()
            except OSError as e:
                raise RayConnectError(f"cannot reach the Ray cluster at {where}: {e.strerror or e}") from None
        done: dict = {}

        def connect():
            try:
                ray.init(**kwargs)
                done["ok"] = True
            except BaseException as e:  # handed to the caller's thread
                done["error"] = e

        thread = threading.Thread(target=connect, name="ray-connect", daemon=True)
        thread.start()
        thread.join(self.connect_timeout_s)
        if thread.is_alive():
            raise RayConnectError(f"the Ray cluster at {where} did not accept this driver within "
                                  f"{self.connect_timeout_s:.0f} s (does the head advertise an address this "
                                  "machine can reach? see `ray status` on the head)")
        if "error" in done:
            e = done["error"]
            text = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RayConnectError(f"cannot join the Ray cluster at {where}: {text} (a cluster with token "
                                  "authentication refuses a driver without its token: set RAY_AUTH_TOKEN, or "
                                  "ray_auth_token_env to the variable that holds it)") from None

    def run_pass(self, chain: Sequence[Stage], spec: TablePass, stats: StageStats, out,
                 on_progress: Callable[[int], None] | None = None) -> None:
        if not (_local(spec.source) and _local(spec.sink)):  # object stores: the in-process path for now
            return super().run_pass(chain, spec, stats, out, on_progress)
        ray = self._ensure_ray()
        pass_id = _pass_id(spec)
        spec.sink.remove_pass_files()  # files of earlier passes whose driver died before committing
        files = _files_holding(spec)
        if not files:
            return
        for attempt in range(1, PASS_ATTEMPTS + 1):
            tally = _Tally()
            try:
                written = self._write_pass(ray, chain, spec, pass_id, files, tally, on_progress)
                break
            except ray.exceptions.RayError as e:
                spec.sink.remove_pass_files(pass_id=pass_id)
                if attempt == PASS_ATTEMPTS:
                    raise
                log.warning("pass %s failed (%s); running it again", pass_id, str(e).splitlines()[0][:200])
        if written:
            spec.sink.commit_files(written, pass_id, spec.metadata)
        spec.sink.remove_pass_files(keep=[name for name, _, _ in written], pass_id=pass_id)
        stats.rows_in += tally.items_in
        stats.rows_out += tally.rows
        for reject in tally.rejects:
            stats.rejected[reject["reason_code"]] += 1
        stats.audio_seconds += tally.audio_total
        for (entry, node), seconds in tally.audio.items():
            per_node = stats.nodes.setdefault(node, {})
            per_node[entry] = per_node.get(entry, 0.0) + seconds
        out.add(Result([], tally.rejects))  # after the rows' commit, as the buffered writer orders them

    def _write_pass(self, ray, chain, spec: TablePass, pass_id: str, files: list[str], tally: "_Tally",
                    on_progress) -> list[tuple[str, int, int]]:
        columns = list(dict.fromkeys([spec.key, *spec.columns]))
        # One task per file reads its pending rows (the key filter pushed into the Parquet scan), a chunk at a
        # time. Reading and writing files declare no CPU: the chain's actors may hold every CPU (on a laptop
        # their declarations add up to the machine), and a pass whose file tasks cannot be placed waits
        # forever (Ray's own read_parquet lists files in a 1-CPU task).
        ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
        block_rows = 4 * chain[0].resources.batch_size  # small blocks stream through the actor pools
        expand = ray.put(spec.expand) if spec.expand else None  # once in the object store, not in every task
        # Tasks that declare no CPU are not bounded by CPU slots: at most one per CPU of the cluster at a time
        io_tasks = max(1, int(ray.cluster_resources().get("CPU", 1)))
        ds = ds.map_batches(_read_files, fn_args=(columns, spec.key, sorted(spec.keys), block_rows, expand),
                            batch_size=1, batch_format="pyarrow", num_cpus=0, concurrency=io_tasks)
        for i, stage in enumerate(chain):
            res = stage.resources
            ds = ds.map_batches(
                _StageActor, fn_constructor_args=(stage, spec.finish if i == len(chain) - 1 else None),
                batch_size=res.batch_size, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=res.concurrency), num_cpus=res.num_cpus,
                num_gpus=res.num_gpus or None, resources=res.custom or None, zero_copy_batch=True)
        sink = spec.sink
        ds = ds.map_batches(_write_block, fn_args=(sink.uri, sink.schema, pass_id), batch_format="pyarrow",
                            batch_size=spec.chunk_rows, num_cpus=0, concurrency=io_tasks)
        written = []
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in table.to_pylist():
                if row["file"]:
                    written.append((row["file"], row["bytes"], row["rows"]))
                tally.add(row)
                if on_progress and row[ITEMS_IN]:
                    on_progress(row[ITEMS_IN])
        return written

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False


class _StageActor:
    def __init__(self, stage: Stage, finish: Callable[[list[dict]], list[dict]] | None = None):
        import ray

        self.stage = stage
        self.finish = finish  # the last entry of a table pass shapes rows for the output table
        self.node = ray.get_runtime_context().get_node_id()[:12]
        stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        carried = {c: sum(row.pop(c, 0) or 0 for row in rows) for c in CARRIED if c in batch.column_names}
        trace = sorted({e for row in rows for e in (row.pop(TRACE, None) or "").split(",") if e})
        if AUDIO_S in carried:
            trace.append(f"{self.stage.name}@{self.node}")
        live = [r for r in rows if not r.get(REJECT) and not r.pop(EMPTY, None)]
        passed = [{REJECT: r[REJECT]} for r in rows if r.get(REJECT)]
        for r in live:
            r.pop(REJECT, None)
        result = self.stage.process_batch(live) if live else Result()
        made = self.finish(result.rows) if self.finish else result.rows
        out = made + [{REJECT: json.dumps(r)} for r in result.rejects] + passed
        if not out:
            out = [{REJECT: None, EMPTY: True}]  # carries the batch's counts on; later stages skip it
        for r in out:
            r.update({c: 0 for c in carried})
            r.setdefault(REJECT, None)
        out[0].update(carried)
        if AUDIO_S in carried:
            for r in out:
                r[TRACE] = None
            out[0][TRACE] = ",".join(trace)
        table = pa.Table.from_pylist(out)
        # Every block carries the marker column with one type, or Ray's schema unification drops it.
        return table.set_column(table.column_names.index(REJECT), REJECT, table[REJECT].cast(pa.string()))

    def __del__(self):
        self.stage.teardown()


def _read_files(paths: pa.Table, columns: list[str], key: str, keys: list[str], chunk_rows: int,
                expand=None) -> Iterator[pa.Table]:
    """On a worker: the pending rows of the given Parquet files, a chunk at a time, as the chain's items
    (`expand`ed where the pass has an expansion); each item accounts for one item in the stats, and the
    first item of each source row for that row's audio seconds."""
    import ray

    if isinstance(expand, ray.ObjectRef):
        expand = ray.get(expand)
    wanted = pa.array(keys, pa.string())
    for path in paths["path"].to_pylist():
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
            table = _without_views(pa.Table.from_batches([batch]))
            table = table.filter(pc.is_in(table[key], value_set=wanted))
            if not table.num_rows:
                continue
            if expand is not None:
                table = expand(table)
            n = table.num_rows
            if not n:
                continue
            if "duration_s" in table.column_names:
                ids = table[key].combine_chunks()
                first = pa.concat_arrays([pa.array([True]), pc.not_equal(ids.slice(1), ids.slice(0, n - 1))])
                seconds = pc.if_else(first, table["duration_s"], 0.0)
            else:
                seconds = pa.array([0.0] * n, pa.float64())
            yield table.append_column(ITEMS_IN, pa.array([1] * n, pa.int64())).append_column(AUDIO_S, seconds)


def _without_views(table: pa.Table) -> pa.Table:
    """String and binary views (delta-rs' merges write them) as plain strings and binaries, which every
    compute kernel takes."""
    plain = {pa.types.is_string_view: pa.string(), pa.types.is_binary_view: pa.binary()}
    return table.cast(pa.schema([next((f.with_type(t) for test, t in plain.items() if test(f.type)), f)
                                 for f in table.schema]))


def _write_block(batch: pa.Table, uri: str, schema: pa.Schema, pass_id: str) -> pa.Table:
    """On a worker: the batch's rows -> one Parquet file in the output table's folder; returns one row
    that tells the driver the file, its counts, the batch's rejects and which nodes processed it."""
    rows, rejects = [], []
    for row in batch.to_pylist():
        marker = row.get(REJECT)
        if marker:
            rejects.append(json.loads(marker))
        elif not row.get(EMPTY):
            rows.append(row)
    name, size = None, 0
    if rows:
        table = conform(rows, schema)
        name = f"{PASS_FILE_PREFIX}{pass_id}-{uuid.uuid4()}.parquet"
        path = Path(uri.removeprefix("file://")) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="snappy")
        size = path.stat().st_size

    def column(name: str, type_: pa.DataType) -> pa.Array:
        total = sum(v or 0 for v in batch[name].to_pylist()) if name in batch.column_names else 0
        return pa.array([total], type_)

    trace = ",".join(sorted({e for v in (batch[TRACE].to_pylist() if TRACE in batch.column_names else [])
                             for e in (v or "").split(",") if e}))
    return pa.table({"file": pa.array([name], pa.string()), "bytes": pa.array([size], pa.int64()),
                     "rows": pa.array([len(rows)], pa.int64()), ITEMS_IN: column(ITEMS_IN, pa.int64()),
                     AUDIO_S: column(AUDIO_S, pa.float64()), TRACE: pa.array([trace], pa.string()),
                     "rejects": pa.array([json.dumps(rejects)], pa.string())})


class _Tally:
    """What the driver keeps of a table pass: counts, rejects, audio seconds by (entry, node)."""

    def __init__(self):
        self.items_in = self.rows = 0
        self.audio_total = 0.0
        self.rejects: list[dict] = []
        self.audio: dict[tuple[str, str], float] = {}

    def add(self, row: dict) -> None:
        self.items_in += row[ITEMS_IN]
        self.rows += row["rows"]
        self.rejects.extend(json.loads(row["rejects"]))
        self.audio_total += row[AUDIO_S]
        for entry in filter(None, (row[TRACE] or "").split(",")):
            stage, node = entry.split("@")
            self.audio[(stage, node)] = self.audio.get((stage, node), 0.0) + row[AUDIO_S]


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: every address of that range reaches this machine."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _local(table: Table) -> bool:
    return "://" not in table.uri or table.uri.startswith("file://")


def _pass_id(spec: TablePass) -> str:
    """The same pass (sink, source version, pending keys, and the items an expansion makes of them) gets the
    same id, so a retried commit is a no-op."""
    h = hashlib.sha256(f"{spec.sink.uri}\n{spec.source.uri}\n{spec.version}\n".encode())
    if spec.expand is not None:
        h.update(f"{spec.expand.ident}\n".encode())
    for key in sorted(spec.keys):
        h.update(key.encode() + b"\n")
    return h.hexdigest()[:20]


def _files_holding(spec: TablePass) -> list[str]:
    """The source version's files that hold at least one pending key (reads the key column only)."""
    wanted = pa.array(sorted(spec.keys), pa.string())
    return [f for f in spec.source.files(spec.version)
            if pc.any(pc.is_in(_without_views(pq.read_table(f, columns=[spec.key]))[spec.key],
                               value_set=wanted)).as_py()]
