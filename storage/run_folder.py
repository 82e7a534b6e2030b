"""The run folder: one Delta table per stage output, the `rejects` table, and `run.json`.

    RUN_DIR/
      clips/  annotations/  questions/ ...   one table per stage output
      rejects/                               item_id, stage, reason_code, detail, source
      run.json                               config, package versions, counts per stage, times
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import tempfile
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator

import fsspec
import pyarrow as pa

from storage.schemas import TABLES, conform
from storage.tables import StorageError, Table

PACKAGES = ("dataflux", "numpy", "pandas", "pyarrow", "deltalake", "soundfile", "soxr", "av", "ray",
            "prefect", "torch", "transformers", "openai")


class RunFolderBusy(RuntimeError):
    """Another live process is running into the same run folder."""


class RunFolder:
    def __init__(self, uri: str | os.PathLike, storage_options: dict[str, str] | None = None):
        uri = str(uri)
        self.uri = uri if "://" in uri else str(Path(uri).resolve())
        self.storage_options = storage_options

    @property
    def local_path(self) -> Path | None:
        """The folder on this machine's disk, or None for an object-store URL."""
        if "://" in self.uri and not self.uri.startswith("file://"):
            return None
        return Path(self.uri.removeprefix("file://"))

    def table(self, name: str) -> Table:
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; known tables: {', '.join(sorted(TABLES))}")
        schema, key = TABLES[name]
        return Table(f"{self.uri.rstrip('/')}/{name}", schema, key, self.storage_options)

    def tables(self) -> list[str]:
        """The tables that exist in this run folder."""
        return [name for name in TABLES if self.table(name).exists()]

    def write(self, name: str, rows: list[dict], metadata: dict[str, str] | None = None) -> int:
        if not rows:
            return 0
        table = self.table(name)
        return table.upsert(conform(rows, table.schema), metadata)

    # run.json -----------------------------------------------------------------------------------

    @property
    def _run_json(self) -> str:
        return f"{self.uri.rstrip('/')}/run.json"

    def read_run_json(self) -> dict:
        fs, path = fsspec.core.url_to_fs(self._run_json, **(self.storage_options or {}))
        if not fs.exists(path):
            return {}
        with fs.open(path, "r") as f:
            return json.load(f)

    def write_run_json(self, info: dict) -> None:
        """Atomic on local disks (write a temporary file, then rename over the old one)."""
        text = json.dumps(info, indent=2, sort_keys=True, default=str)
        folder = self.local_path
        if folder is None:
            with fsspec.open(self._run_json, "w", **(self.storage_options or {})) as f:
                f.write(text)
            return
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".run.json.")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; run.json is for everyone who reads the run
            os.replace(tmp, folder / "run.json")
        except OSError as e:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"cannot write {folder / 'run.json'}: {e.strerror or e}") from e

    @contextmanager
    def lock(self, owner: dict) -> Iterator[dict | None]:
        """Hold the run folder for one invocation (an advisory lock on `RUN_DIR/.lock`, released by the
        OS when the process dies, SIGKILL included). Yields the previous holder's `owner` record, which
        a caller may use to clean up after a holder that died; raises RunFolderBusy if a live process
        holds it. Object-store run folders are not locked (yields None)."""
        folder = self.local_path
        if folder is None:
            yield None
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot create {folder / '.lock'}: {e.strerror or e}") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                raise RunFolderBusy(f"run folder {folder} is in use by another run ({holder or 'unknown'})") from None
            try:
                previous = json.loads(os.pread(fd, 1 << 16, 0) or b"null")
            except ValueError:
                previous = None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({**owner, "pid": os.getpid(), "host": platform.node()}).encode(), 0)
            yield previous
        finally:
            os.close(fd)  # closing releases the lock

    def start_invocation(self, command: str, config: dict) -> dict:
        """Record one invocation (a `dataflux run` or `ingest`) in run.json and return its entry."""
        info = self.read_run_json()
        entry = {"command": command, "started_at": _now(), "ended_at": None, "status": "running",
                 "config": config, "stages": {}}
        info.setdefault("invocations", []).append(entry)
        info["packages"] = package_versions()
        info["python"] = platform.python_version()
        self.write_run_json(info)
        return entry

    def end_invocation(self, stages: dict[str, dict], status: str) -> dict:
        info = self.read_run_json()
        entry = info["invocations"][-1]
        entry.update(ended_at=_now(), status=status, stages=stages)
        info["counts"] = self.counts()
        info["run_dir"] = self.uri
        self.write_run_json(info)
        return info

    def counts(self) -> dict:
        """Rows per table, and rejects per stage and reason."""
        counts: dict = {name: self.table(name).num_rows() for name in self.tables() if name != "rejects"}
        rejects = self.table("rejects").read(columns=["stage", "reason_code"])
        by_stage: dict[str, dict[str, int]] = {}
        for row in rejects.group_by(["stage", "reason_code"]).aggregate([("stage", "count")]).to_pylist():
            by_stage.setdefault(row["stage"], {})[row["reason_code"]] = row["stage_count"]
        counts["rejects"] = {stage: dict(sorted(r.items())) for stage, r in sorted(by_stage.items())}
        return counts

    def rejects(self, stage: str | None = None) -> pa.Table:
        table = self.table("rejects").read()
        if stage is None:
            return table
        return table.filter(pa.compute.equal(table["stage"], stage))


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
