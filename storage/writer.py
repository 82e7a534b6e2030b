"""Buffer stage results and commit them in few, atomic table versions.

Rows go first, rejects second; a crash between the two commits loses only rejects, whose inputs a
re-run processes again (both tables merge by key, so nothing lands twice).
"""

from __future__ import annotations

import time

from storage.run_folder import RunFolder


class BufferedWriter:
    def __init__(self, run: RunFolder, table: str, metadata: dict[str, str] | None = None,
                 max_rows: int = 512, max_bytes: int = 64 << 20, max_seconds: float = 30.0):
        self.run, self.table, self.metadata = run, table, metadata
        self.max_rows, self.max_bytes, self.max_seconds = max_rows, max_bytes, max_seconds
        self.rows: list[dict] = []
        self.rejects: list[dict] = []
        self.bytes = 0
        self.since = time.monotonic()
        self.written = {"rows": 0, "rejects": 0, "commits": 0}

    def add(self, result) -> None:
        self.rows.extend(result.rows)
        self.rejects.extend(result.rejects)
        self.bytes += sum(len(v) for row in result.rows for v in row.values() if isinstance(v, bytes))
        if (len(self.rows) + len(self.rejects) >= self.max_rows or self.bytes >= self.max_bytes
                or time.monotonic() - self.since >= self.max_seconds):
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.written["rows"] += self.run.write(self.table, self.rows, self.metadata)
            self.written["commits"] += 1
        if self.rejects:
            self.written["rejects"] += self.run.write("rejects", self.rejects, self.metadata)
            self.written["commits"] += 1
        self.rows, self.rejects, self.bytes, self.since = [], [], 0, time.monotonic()

    def __enter__(self) -> "BufferedWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Buffered results are whole batches, valid even when a later batch failed: keep them. Not
        # when writing itself failed (a full disk): trying again would only hide the first error.
        if exc_type is None or not issubclass(exc_type, OSError):
            self.flush()
