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
import threading
import time
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

import fsspec
import fsspec.asyn
import pyarrow as pa

from storage.schemas import TABLES, conform
from storage.tables import StorageError, Table

PACKAGES = ("dataflux", "numpy", "pandas", "pyarrow", "deltalake", "soundfile", "soxr", "av", "ray",
            "prefect", "torch", "transformers", "openai")


LOCK_LEASE_S = 60.0  # an object-store lock whose holder stopped renewing it this long is free


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

    @property
    def llm_cache(self) -> str:
        """Where the LLM request cache lives: a SQLite file in a local run folder, key-value objects
        under `llm_cache/` in an object-store one (`dataflux.llm.cache.open_cache` opens either)."""
        folder = self.local_path
        return str(folder / "llm_cache.sqlite") if folder is not None else f"{self.uri.rstrip('/')}/llm_cache"

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
    def lock(self, owner: dict, wait_s: float | None = 0.0,
             on_wait: Callable[[str], None] | None = None) -> Iterator[dict | None]:
        """Hold the run folder for one invocation (an advisory lock on `RUN_DIR/.lock`, released by the
        OS when the process dies, SIGKILL included). Yields the previous holder's `owner` record, which
        a caller may use to clean up after a holder that died. If a live process holds it: with
        `wait_s` 0, RunFolderBusy at once; otherwise wait for it that long (None: for as long as it
        takes), calling `on_wait(why)` once. On S3 the lock is an object created with a conditional
        write (`StoreLock`); other object stores are not locked (yields None)."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        told = False
        with ExitStack() as held:
            while True:
                try:  # only taking the lock is retried, never the caller's work under it
                    previous = held.enter_context(self._lock_once(owner))
                    break
                except RunFolderBusy as busy:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    if on_wait and not told:
                        on_wait(str(busy))
                        told = True
                    time.sleep(0.5 if self.local_path is not None else 5.0)
            yield previous

    @contextmanager
    def _lock_once(self, owner: dict) -> Iterator[dict | None]:
        folder = self.local_path
        if folder is None:
            if not self.uri.startswith(("s3://", "s3a://")):
                yield None
                return
            with StoreLock(f"{self.uri.rstrip('/')}/.lock", self.storage_options).hold(owner) as previous:
                yield previous
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

    def rejects(self, stage: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """The rejects (of one stage), with all columns or only `columns`."""
        table = self.table("rejects").read(columns=None if columns is None else list({*columns, "stage"}))
        if stage is not None:
            table = table.filter(pa.compute.equal(table["stage"], stage))
        return table if columns is None else table.select(columns)


class StoreLock:
    """A lock on an object store, for run folders whose workers and drivers share no disk: the lock is
    an object created only if absent (S3 `If-None-Match: *`), so of two runs starting together exactly
    one creates it. A process holding it renews a lease (`lease_s`) by overwriting the object only if
    it is still the one it wrote (`If-Match` on its ETag); nothing releases a lock of a process that
    died, so a lock whose lease ran out (judged by the store's own clock, the object's Last-Modified,
    against this machine's clock) is taken over, again with `If-Match`, so that only one of several
    waiting runs gets it."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None, lease_s: float | None = None):
        self.uri = uri
        self.fs, self.path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        self.bucket, self.key, _ = self.fs.split_path(self.path)
        self.lease_s = lease_s or float(os.environ.get("DATAFLUX_LOCK_LEASE_S", LOCK_LEASE_S))

    def _put(self, body: bytes, **condition) -> str:
        return self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=body, **condition)["ETag"]

    def _current(self) -> tuple[dict | None, str | None, float]:
        """(record, ETag, age in seconds) of the lock object; (None, None, 0) when there is none."""
        async def get():
            reply = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            async with reply["Body"] as stream:
                return reply, await stream.read()

        try:
            reply, text = fsspec.asyn.sync(self.fs.loop, get)
        except FileNotFoundError:
            return None, None, 0.0
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        return record, reply["ETag"], time.time() - reply["LastModified"].timestamp()

    @contextmanager
    def hold(self, owner: dict) -> Iterator[dict | None]:
        record = {**owner, "pid": os.getpid(), "host": platform.node(), "lease_s": self.lease_s}
        body = json.dumps(record).encode()
        previous = None
        try:
            etag = self._put(body, IfNoneMatch="*")
        except OSError as e:  # PreconditionFailed (FileExistsError) when the lock exists; or a store error
            held, held_etag, age = self._current()
            if held_etag is None:
                raise StorageError(f"cannot create {self.uri}: {e}") from e
            if age <= self.lease_s:
                raise RunFolderBusy(f"run folder {self.uri.rsplit('/', 1)[0]} is in use by another run "
                                    f"({json.dumps(held)}; its lease runs out in {self.lease_s - age:.0f} s "
                                    "if that run has died)") from None
            try:  # the holder died: take the lock over, unless another run just did
                etag = self._put(body, IfMatch=held_etag)
            except OSError:
                raise RunFolderBusy(f"run folder {self.uri.rsplit('/', 1)[0]} was just taken over by "
                                    "another run") from None
            previous = held
        stop = threading.Event()
        state = {"etag": etag, "lost": False}

        def renew():
            while not stop.wait(self.lease_s / 4):
                try:
                    state["etag"] = self._put(body, IfMatch=state["etag"])
                except OSError:
                    state["lost"] = True  # taken over (we were stalled past the lease) or the store failed
                    return

        thread = threading.Thread(target=renew, name="dataflux-lock-lease", daemon=True)
        thread.start()
        try:
            yield previous
        finally:
            stop.set()
            thread.join()
            if not state["lost"]:
                _, current, _ = self._current()
                if current == state["etag"]:
                    self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key)


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
