"""A table is Parquet files under a Delta Lake transaction log: atomic commits, versions, time travel.

Reads go through a snapshot's file list and `pyarrow.parquet`, never `DeltaTable.to_pyarrow_table()`,
which with pyarrow 26 aborts the interpreter at exit in about half the runs.
"""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import TableNotFoundError


class Table:
    def __init__(self, uri: str, schema: pa.Schema, key: tuple[str, ...],
                 storage_options: dict[str, str] | None = None):
        self.uri = uri
        self.schema = schema
        self.key = key
        self.storage_options = storage_options

    def _delta(self, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            if version is not None:
                raise
            return None

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
            "rows_added": _rows_added(h.get("operationMetrics", {})),
            "metadata": {k: v for k, v in h.items() if k.startswith("dataflux.")},
        } for h in dt.history()]

    def read(self, version: int | None = None, columns: list[str] | None = None) -> pa.Table:
        """The rows at `version` (latest by default), sorted by key so that reads are reproducible."""
        dt = self._delta(version)
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        if dt is None or not dt.file_uris():
            return schema.empty_table()
        if _is_local(self.uri):
            table = pq.read_table(dt.file_uris(), schema=self.schema, columns=columns)
        else:  # object stores: let delta-rs do the reading
            select = ", ".join(f'"{c}"' for c in schema.names)
            reader = QueryBuilder().register("t", dt).execute(f"SELECT {select} FROM t")
            table = pa.table(reader).cast(schema)
        sort_keys = [(k, "ascending") for k in self.key if k in table.column_names]
        return table.sort_by(sort_keys) if sort_keys else table

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
        Returns the number of rows inserted.
        """
        rows = _dedupe(rows.cast(self.schema), self.key)
        if rows.num_rows == 0:
            return 0
        props = CommitProperties(custom_metadata={f"dataflux.{k}": str(v) for k, v in (metadata or {}).items()})
        dt = self._delta()
        if dt is None:
            write_deltalake(self.uri, rows, mode="append", storage_options=self.storage_options,
                            commit_properties=props)
            return rows.num_rows
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in self.key)
        result = (dt.merge(source=rows, predicate=predicate, source_alias="s", target_alias="t",
                           commit_properties=props)
                  .when_not_matched_insert_all().execute())
        return int(result["num_target_rows_inserted"])


def _dedupe(rows: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """Keep the first row of each key inside one batch (a merge source must not repeat a key)."""
    if rows.num_rows < 2:
        return rows
    indexed = rows.select(list(key)).append_column("_i", pa.array(range(rows.num_rows)))
    first = indexed.group_by(list(key), use_threads=False).aggregate([("_i", "min")])
    return rows.take(sorted(first["_i_min"].to_pylist()))


def _rows_added(metrics: dict) -> int | None:
    for name in ("num_added_rows", "num_target_rows_inserted"):
        if name in metrics:
            return int(metrics[name])
    return None


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")
