"""Where task results persist, and why they are JSON only.

Task results live beside the run folder, which may be shared with other people or live on object
storage. Prefect reads a persisted result record with the serializer the record names in its own
metadata, pickle included, and it deserializes records even to check whether a cached one exists: so a
`result_serializer="json"` on the task alone would still unpickle a planted file. `JsonResults` reads
a record only if it names the JSON serializer and holds plain JSON (no `__class__` / `__exc_type__`
objects, which Prefect's JSON decoder would import and build); anything else reads as "no record",
so the task runs again and overwrites it. Our tasks return URIs, versions and stats: JSON is enough.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import LocalFileSystem

SERIALIZER = "json"


class UnsafeResult(ValueError):
    """A persisted result record that is not plain JSON written by the JSON serializer."""


def _objects(value) -> bool:
    if isinstance(value, dict):
        return "__class__" in value or "__exc_type__" in value or any(_objects(v) for v in value.values())
    if isinstance(value, list):
        return any(_objects(v) for v in value)
    return False


def check_record(content: bytes, where: str) -> bytes:
    """Return `content` if it is a JSON result record of the JSON serializer with a plain JSON result."""
    try:
        record = json.loads(content)
        kind = record["metadata"]["serializer"]["type"]
        result = json.loads(record["result"]) if isinstance(record["result"], str) else record["result"]
    except (ValueError, KeyError, TypeError) as e:
        raise UnsafeResult(f"{where}: not a JSON result record ({type(e).__name__}); ignored") from None
    if kind != SERIALIZER:
        raise UnsafeResult(f"{where}: result record names the {kind!r} serializer; only JSON is read")
    if _objects(result):
        raise UnsafeResult(f"{where}: result holds encoded Python objects; only plain JSON is read")
    return content


class JsonResults(LocalFileSystem):
    """A local folder of task results that reads back only plain-JSON result records."""

    _block_type_name = "DataFlux JSON Results"

    def _read_checked(self, path: str) -> bytes:
        resolved = Path(self._resolve_path(path))
        if not resolved.is_file():
            raise ValueError(f"Path {resolved} does not exist.")
        return check_record(resolved.read_bytes(), str(resolved))

    async def aread_path(self, path: str) -> bytes:
        return self._read_checked(path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return self._read_checked(path)


def results_storage(local_path: Path | None) -> JsonResults | None:
    """Task results beside a local run folder (`.prefect-results/`), saved as a block so cached results
    point at storage the server knows; None for object-store run folders (Prefect's default storage,
    configured by PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, must then be trusted)."""
    if local_path is None:
        return None
    block = JsonResults(basepath=str(local_path / ".prefect-results"))
    block.save("dataflux-results-" + hashlib.sha256(str(local_path).encode()).hexdigest()[:12], overwrite=True)
    return block
