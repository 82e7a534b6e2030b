"""A table is Parquet files under a Delta Lake transaction log: atomic commits, versions, time travel.

Reads go through a snapshot's file list and `pyarrow.parquet`, never `DeltaTable.to_pyarrow_table()`,
which with pyarrow 26 aborts the interpreter at exit in about half the runs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, QueryBuilder, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, Transaction, create_table_with_add_actions
from deltalake.exceptions import DeltaError, TableNotFoundError


APPEND_FILE_ROWS = 4096  # rows per Parquet file written by Table.append
PASS_FILE_PREFIX = "pass-"  # Parquet files written by workers: pass-<pass id>-<uuid>.parquet
PASS_APP_PREFIX = "dataflux.pass."  # Delta application-transaction id of a committed pass


class VersionVacuumed(FileNotFoundError):
    """An old table version whose files were deleted by a vacuum past its retention window."""


class StorageError(OSError):
    """A table could not be written (disk full, read-only or unwritable folder, ...). The commit did
    not happen: the table's visible versions are unchanged."""


def _os_reason(error: BaseException) -> str:
    text = str(error)
    m = re.search(r"\(os error (\d+)\)", text)
    code = int(m.group(1)) if m else getattr(error, "errno", None)
    if code is not None:
        return f"{os.strerror(code)} (errno {code})"
    return text.splitlines()[0][:300] if text else type(error).__name__


class Table:
    def __init__(self, uri: str, schema: pa.Schema, key: tuple[str, ...],
                 storage_options: dict[str, str] | None = None):
        self.uri = uri
        self.schema = schema
        self.key = key
        self.storage_options = storage_options
        self._keys: tuple[int, pa.Array] | None = None  # upsert's cache: (version, its keys)

    def _delta(self, version: int | None = None) -> DeltaTable | None:
        try:
            dt = DeltaTable(self.uri, version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            if version is not None:
                raise
            return None
        if version is not None and _is_local(self.uri):
            gone = [f for f in dt.file_uris() if not os.path.exists(f.removeprefix("file://"))]
            if gone:
                raise VersionVacuumed(f"table {self.uri} version {version} is no longer readable: {len(gone)} of "
                                      f"its {len(dt.file_uris())} files were vacuumed (`dataflux maintain` keeps "
                                      f"the versions of its retention window, 7 days by default, and the latest)")
        return dt

    def exists(self) -> bool:
        return self._delta() is not None

    def version(self) -> int | None:
        dt = self._delta()
        return None if dt is None else dt.version()

    def history(self) -> list[dict]:
        dt = self._delta()
        if dt is None:
            return []
        return [{
            "version": h["version"],
            "timestamp_ms": h["timestamp"],
            "operation": h["operation"],
            "rows_added": _rows_added(h),
            "metadata": {k: v for k, v in h.items()
                         if k.startswith("dataflux.") and k not in ("dataflux.commit_id", "dataflux.rows_added")},
        } for h in dt.history()]

    def read(self, version: int | None = None, columns: list[str] | None = None,
             where: tuple[str, pa.Array | pa.ChunkedArray] | None = None) -> pa.Table:
        """The rows at `version` (latest by default), sorted by key so that reads are reproducible.
        `where=(column, values)` keeps the rows whose `column` is in `values`, filtering a batch at a time as
        it reads (a few rows of a big table never hold the whole table in memory)."""
        dt = self._delta(version)
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        if dt is None or not dt.file_uris():
            return schema.empty_table()
        if where is not None:
            names = list(dict.fromkeys([*schema.names, where[0]]))
            chunks = self.scan(names, (where[0], set(_flat(where[1]).to_pylist())), 1 << 16, version)
            table = pa.concat_tables([pa.schema([self.schema.field(c) for c in names]).empty_table(), *chunks])
            table = table.select(schema.names)
        elif _is_local(self.uri):
            table = pq.read_table(dt.file_uris(), schema=self.schema, columns=columns)
        else:  # object stores: let delta-rs do the reading
            select = ", ".join(f'"{c}"' for c in schema.names)
            reader = QueryBuilder().register("t", dt).execute(f"SELECT {select} FROM t")
            table = pa.table(reader).cast(schema)
        sort_keys = [(k, "ascending") for k in self.key if k in table.column_names]
        return table.sort_by(sort_keys) if sort_keys else table

    def scan(self, columns: list[str] | None = None, where: tuple[str, set] | None = None,
             chunk_rows: int = 1024, version: int | None = None) -> Iterator[pa.Table]:
        """The rows at `version`, streamed in tables of at most `chunk_rows` rows (in file order, not
        sorted): for big columns such as audio, which must not be held whole. `where=(column, values)`
        keeps the rows whose `column` is in `values`. The snapshot is fixed at the call."""
        dt = self._delta(version)
        if dt is None:
            return iter(())
        if _is_local(self.uri):
            files = dt.file_uris()
            batches = (b for f in files for b in pq.ParquetFile(f).iter_batches(batch_size=chunk_rows, columns=columns))
        else:
            select = ", ".join(f'"{c}"' for c in (columns or self.schema.names))
            batches = (pa.record_batch(b)  # delta-rs hands out arro3 batches: to pyarrow (zero-copy)
                       for b in QueryBuilder().register("t", dt).execute(f"SELECT {select} FROM t"))
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        return _rechunk((b.select(schema.names).cast(schema) for b in batches), chunk_rows, where)

    def files(self, version: int | None = None) -> list[str]:
        """The Parquet files that make up `version` (latest by default): what outside readers load."""
        dt = self._delta(version)
        return [] if dt is None else list(dt.file_uris())

    def num_rows(self, version: int | None = None) -> int:
        """Counted from the log's file statistics: no data is read."""
        dt = self._delta(version)
        if dt is None:
            return 0
        return sum(pa.table(dt.get_add_actions(flatten=True))["num_records"].to_pylist())

    def keys(self, columns: Iterable[str] | None = None) -> pa.Table:
        return self.read(columns=list(columns or self.key))

    def upsert(self, rows: pa.Table, metadata: dict[str, str] | None = None) -> int:
        """Insert the rows whose key is not in the table yet, in one atomic commit.

        Merge-by-key makes a re-run (after a crash, or of the same input) add nothing twice.
        Returns the number of rows inserted. The table's keys are read (the key columns only) and the
        new rows appended: a Delta MERGE reads every column of the target, audio included, at each
        commit. The keys stay with this object from one commit to the next while the table's version
        is the one it wrote; the run folder's lock makes a run its tables' only writer.
        """
        rows = _dedupe(rows.cast(self.schema), self.key)
        if rows.num_rows == 0:
            return 0
        try:
            version, known = self._known_keys()
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot write table {self.uri}: {_os_reason(e)}; nothing was committed") from e
        rows = rows.filter(pc.invert(pc.is_in(_joined_key(rows, self.key), value_set=known)))
        if rows.num_rows == 0:
            return 0
        added = self.append([rows], metadata)
        after = self.version()
        self._keys = (after, pa.concat_arrays([known, _joined_key(rows, self.key)])) \
            if after == (-1 if version is None else version) + 1 else None
        return added

    def _known_keys(self) -> tuple[int | None, pa.Array]:
        """(version, the keys at it, joined to one string per row), from the cache when it is current."""
        version = self.version()
        if version is None:
            return None, pa.array([], pa.string())
        if self._keys is None or self._keys[0] != version:
            self._keys = (version, _joined_key(self.read(version, list(self.key)), self.key))
        return self._keys

    def _landed(self, commit_id: str) -> int | None:
        """Rows added by the commit tagged `commit_id`, if it is in the log after all: on an object store
        a connection dropped after the store applied the commit reads as a failure (delta-rs' retry of
        the conditional put then meets its own commit)."""
        try:
            dt = self._delta()
            recent = dt.history(limit=10) if dt is not None else []
        except (DeltaError, OSError):
            return None
        for h in recent:
            if h.get("dataflux.commit_id") == commit_id:
                return _rows_added(h) or 0
        return None

    def append(self, chunks: Iterable[pa.Table], metadata: dict[str, str] | None = None) -> int:
        """Append a stream of rows in one atomic commit, holding one chunk at a time. Only for rows
        whose keys the caller knows to be new (no merge); returns the number of rows written."""
        metadata = {**(metadata or {}), "commit_id": uuid.uuid4().hex}
        try:
            return self._append(chunks, metadata)
        except (DeltaError, OSError) as e:
            if (landed := self._landed(metadata["commit_id"])) is not None:
                return landed
            raise StorageError(f"cannot write table {self.uri}: {_os_reason(e)}; nothing was committed") from e

    def _append(self, chunks: Iterable[pa.Table], metadata: dict[str, str]) -> int:
        if not _is_local(self.uri):
            return self._append_spooled(chunks, metadata)
        # Local tables: the Parquet files are written here, a row group per chunk, and committed in one
        # transaction; delta-rs' own writer holds a whole write in memory (about 4x its size).
        folder = Path(self.uri.removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        actions, count, writer, path, in_file = [], 0, None, None, 0

        def close():
            writer.close()
            actions.append(AddAction(path.name, path.stat().st_size, {}, int(time.time() * 1000), True,
                                     json.dumps({"numRecords": in_file})))

        for chunk in chunks:
            chunk = chunk.select(self.schema.names).cast(self.schema)
            if not chunk.num_rows:
                continue
            if writer is None:
                path = folder / f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
                writer, in_file = pq.ParquetWriter(path, self.schema, compression="snappy"), 0
            writer.write_table(chunk)
            count += chunk.num_rows
            in_file += chunk.num_rows
            if in_file >= APPEND_FILE_ROWS:
                close()
                writer = None
        if writer is not None:
            close()
        if not actions:
            return 0
        props = _commit_properties({**metadata, "rows_added": count})
        dt = self._delta()
        if dt is None:
            create_table_with_add_actions(self.uri, DeltaSchema.from_arrow(self.schema), actions, mode="append",
                                          commit_properties=props)
        else:
            dt.create_write_transaction(actions, mode="append", schema=self.schema, commit_properties=props)
        return count

    def commit_files(self, files: list[tuple[str, int, int]], pass_id: str,
                     metadata: dict[str, str] | None = None) -> bool:
        """Commit Parquet files already written into this table's folder (`(name, bytes, rows)` each) in
        one transaction, keyed on `pass_id`: Delta's application transaction makes a second commit of the
        same pass a no-op. Returns False when the pass was already committed. Local tables only."""
        dt = self._delta()
        app_id = PASS_APP_PREFIX + pass_id
        if dt is not None and dt.transaction_version(app_id) is not None:
            return False
        now = int(time.time() * 1000)
        actions = [AddAction(name, size, {}, now, True, json.dumps({"numRecords": rows})) for name, size, rows in files]
        props = CommitProperties(custom_metadata=_commit_properties(metadata).custom_metadata,
                                 app_transactions=[Transaction(app_id, 1)])
        try:
            if dt is None:
                create_table_with_add_actions(self.uri, DeltaSchema.from_arrow(self.schema), actions, mode="append",
                                              commit_properties=props)
            else:
                dt.create_write_transaction(actions, mode="append", schema=self.schema, commit_properties=props)
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot write table {self.uri}: {_os_reason(e)}; nothing was committed") from e
        return True

    def committed_pass(self, pass_id: str) -> bool:
        dt = self._delta()
        return dt is not None and dt.transaction_version(PASS_APP_PREFIX + pass_id) is not None

    def remove_pass_files(self, keep: Iterable[str] = (), pass_id: str | None = None) -> int:
        """Delete files that workers wrote for a pass and that no commit references: those of `pass_id`
        not in `keep`, or (no `pass_id`) those of every pass that never committed. Returns the count."""
        folder = Path(self.uri.removeprefix("file://"))
        if not folder.is_dir():
            return 0
        keep, removed, committed = set(keep), 0, {}
        for path in folder.glob(f"{PASS_FILE_PREFIX}*.parquet"):
            owner = path.name[len(PASS_FILE_PREFIX):].split("-", 1)[0]
            if pass_id is not None:
                stale = owner == pass_id and path.name not in keep
            else:
                if owner not in committed:
                    committed[owner] = self.committed_pass(owner)
                stale = not committed[owner]
            if stale:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _append_spooled(self, chunks: Iterable[pa.Table], metadata: dict[str, str]) -> int:
        # Spooled to a local Arrow file first: delta-rs pulls the stream from inside its own async
        # runtime, where the chunks' producer (often another table's scan) may not call delta-rs.
        count = 0
        with tempfile.TemporaryDirectory(prefix="dataflux-append-") as tmp:
            spool = str(Path(tmp) / "rows.arrow")
            with pa.ipc.new_file(spool, self.schema) as sink:
                for chunk in chunks:
                    chunk = chunk.select(self.schema.names).cast(self.schema)
                    count += chunk.num_rows
                    sink.write_table(chunk)
            with pa.memory_map(spool) as source:
                spooled = pa.ipc.open_file(source)
                reader = pa.RecordBatchReader.from_batches(
                    self.schema, (spooled.get_batch(i) for i in range(spooled.num_record_batches)))
                write_deltalake(self.uri, reader, mode="append", storage_options=self.storage_options,
                                commit_properties=_commit_properties({**metadata, "rows_added": count}))
        return count


def _commit_properties(metadata: dict[str, str] | None) -> CommitProperties:
    return CommitProperties(custom_metadata={f"dataflux.{k}": str(v) for k, v in (metadata or {}).items()})


def _flat(values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else pa.array(values)


def _rechunk(batches: Iterator[pa.RecordBatch], chunk_rows: int,
             where: tuple[str, set] | None) -> Iterator[pa.Table]:
    values = list(where[1]) if where else None
    wanted: dict[pa.DataType, pa.Array] = {}  # the values as an array of the column's type (typed once)
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if values is not None:
            column = batch[where[0]]
            if column.type not in wanted:
                wanted[column.type] = pa.array(values, column.type)
            batch = batch.filter(pc.is_in(column, value_set=wanted[column.type]))
        while batch.num_rows:
            take = batch.slice(0, chunk_rows - held)
            pending.append(take)
            held += take.num_rows
            batch = batch.slice(take.num_rows)
            if held == chunk_rows:
                yield pa.Table.from_batches(pending)
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending)


def _dedupe(rows: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """Keep the first row of each key inside one batch (a merge source must not repeat a key)."""
    if rows.num_rows < 2:
        return rows
    indexed = rows.select(list(key)).append_column("_i", pa.array(range(rows.num_rows)))
    first = indexed.group_by(list(key), use_threads=False).aggregate([("_i", "min")])
    return rows.take(sorted(first["_i_min"].to_pylist()))


def _rows_added(commit: dict) -> int | None:
    """Rows a commit added: ours record it (`dataflux.rows_added`), delta-rs' own writes in their metrics."""
    if "dataflux.rows_added" in commit:
        return int(commit["dataflux.rows_added"])
    metrics = commit.get("operationMetrics", {})
    for name in ("num_added_rows", "num_target_rows_inserted"):
        if name in metrics:
            return int(metrics[name])
    return None


def _joined_key(table: pa.Table, key: tuple[str, ...]) -> pa.Array:
    """One string per row for a key of one or more columns (joined with a unit separator)."""
    columns = [pc.cast(table[k].combine_chunks(), pa.string()) for k in key]
    return columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, "\x1f")


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")
