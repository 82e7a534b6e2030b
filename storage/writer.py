"""Buffer stage results and commit them in few, atomic table versions.

Rows go first, rejects second; a crash between the two commits loses only rejects, whose inputs a
re-run processes again (both tables merge by key, so nothing lands twice).
"""

from __future__ import annotations

import time

import pyarrow as pa

from storage.run_folder import RunFolder
from storage.schemas import conform


class BufferedWriter:
    """Results are held as Arrow tables in the output table's schema (not as Python rows) until a commit."""

    def __init__(self, run: RunFolder, table: str, metadata: dict[str, str] | None = None,
                 max_rows: int = 512, max_bytes: int = 64 << 20, max_seconds: float = 30.0):
        self.run, self.table, self.metadata = run, table, metadata
        self.max_rows, self.max_bytes, self.max_seconds = max_rows, max_bytes, max_seconds
        # one Table object per table for the writer's life: it keeps the keys it committed (Table.upsert)
        self.tables = {name: run.table(name) for name in (table, "rejects")}
        self.held: dict[str, list[pa.Table]] = {table: [], "rejects": []}
        self.count = self.bytes = 0
        self.since = time.monotonic()
        self.written = {"rows": 0, "rejects": 0, "commits": 0}

    def add(self, result) -> None:
        for name, rows in ((self.table, result.rows), ("rejects", result.rejects)):
            if rows:
                table = conform(rows, self.tables[name].schema)
                self.held[name].append(table)
                self.count += table.num_rows
                self.bytes += sum(c.nbytes for c in table.columns if pa.types.is_binary(c.type))  # audio
        if (self.count >= self.max_rows or self.bytes >= self.max_bytes
                or time.monotonic() - self.since >= self.max_seconds):
            self.flush()

    def flush(self) -> None:
        for name, key in ((self.table, "rows"), ("rejects", "rejects")):
            if self.held[name]:
                self.written[key] += self.tables[name].upsert(pa.concat_tables(self.held[name]), self.metadata)
                self.written["commits"] += 1
                self.held[name] = []
        self.count, self.bytes, self.since = 0, 0, time.monotonic()

    def __enter__(self) -> "BufferedWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Buffered results are whole batches, valid even when a later batch failed: keep them. Not
        # when writing itself failed (a full disk): trying again would only hide the first error.
        if exc_type is None or not issubclass(exc_type, OSError):
            self.flush()
