"""A persistent request cache (JSON values only: nothing is unpickled): SQLite in a local run folder,
one small JSON object per answer under an object-store run folder (`StoreCache`), which every worker
on every node reads and writes directly.

The key is a hash of (model, prompt-template version, sorted generation parameters, response-schema
hash, input hash), so a re-run never re-sends a request that already has an answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path


def request_key(model: str, template_version: str, params: dict, schema: dict | None, messages: list) -> str:
    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

    return digest({"model": model, "template": template_version, "params": dict(sorted(params.items())),
                   "schema": digest(schema) if schema else None, "input": digest(messages)})


class RequestCache:
    remote = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                         "created REAL NOT NULL)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
        if "template" not in columns:  # the prompt-template version, so that `prune` can drop retired ones
            self._db.execute("ALTER TABLE responses ADD COLUMN template TEXT")

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict, template: str | None = None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value, created, template) VALUES (?, ?, ?, ?)",
                             (key, json.dumps(value, sort_keys=True), time.time(), template))

    def templates(self) -> dict[str | None, int]:
        """Rows per prompt-template version (None: rows written before versions were recorded)."""
        with self._lock:
            return dict(self._db.execute("SELECT template, COUNT(*) FROM responses GROUP BY template").fetchall())

    def prune(self, keep: set[str]) -> dict:
        """Delete the answers of prompt-template versions not in `keep` (their keys can never be asked
        again) and give the space back; rows of unknown version stay. Returns rows deleted per version
        and the bytes the file shrank by."""
        before = self.path.stat().st_size
        retired = f"template IS NOT NULL AND template NOT IN ({', '.join('?' * len(keep)) or chr(39) * 2})"
        with self._lock:
            dropped = dict(self._db.execute(f"SELECT template, COUNT(*) FROM responses WHERE {retired} "
                                            "GROUP BY template", tuple(keep)).fetchall())
            if dropped:
                self._db.execute(f"DELETE FROM responses WHERE {retired}", tuple(keep))
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.execute("VACUUM")
        return {"rows_deleted": dropped, "bytes_freed": max(0, before - self.path.stat().st_size)}

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class StoreCache:
    """The cache as key-value files under a URL (`s3://bucket/run/llm_cache/ab/abcd....json`): no
    coordination is needed across processes and nodes, since one key always maps to the same answer
    and every write of an object is atomic on an object store."""

    remote = True  # reads are network round trips: the client runs them off its event loop

    def __init__(self, uri: str):
        import fsspec

        self.uri = uri.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(self._path(key)))
        except FileNotFoundError:
            return None

    def put(self, key: str, value: dict, template: str | None = None) -> None:
        self.fs.pipe_file(self._path(key), json.dumps({**value, "template": template}, sort_keys=True).encode())

    def __len__(self) -> int:
        try:
            return sum(1 for p in self.fs.find(self.root) if p.endswith(".json"))
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        pass


def open_cache(location: str | Path) -> RequestCache | StoreCache:
    """The cache at `location`: a local SQLite file, or key-value objects under a URL."""
    location = str(location)
    if "://" in location and not location.startswith("file://"):
        return StoreCache(location)
    return RequestCache(location.removeprefix("file://"))
