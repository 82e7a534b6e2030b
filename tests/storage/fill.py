"""Rows for any registered table, built from its schema: every column filled (audio is real FLAC), so a
test can exercise every table with real Delta commits and no pipeline run."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import soundfile as sf

from storage.run_folder import RunFolder
from storage.schemas import TABLES


def flac(i: int) -> bytes:
    buf = io.BytesIO()
    tone = 0.3 * np.sin(np.arange(1600) * 0.01 * (i + 1)).astype("float32")
    sf.write(buf, tone, 16000, format="FLAC")
    return buf.getvalue()


def value(t: pa.DataType, i: int, name: str):
    if name == "audio":
        return flac(i)
    if pa.types.is_string(t):
        return f"{name}-{i:05d}"
    if pa.types.is_binary(t):
        return bytes([i % 256]) * 5
    if pa.types.is_boolean(t):
        return i % 2 == 0
    if pa.types.is_integer(t):
        return i
    if pa.types.is_floating(t):
        return i + 0.5
    if pa.types.is_list(t):
        return [value(t.value_type, i, name), value(t.value_type, i + 1, name)]
    if pa.types.is_struct(t):
        return {f.name: value(f.type, i, f.name) for f in t}
    raise TypeError(f"no test value for {t}")


def rows(name: str, start: int, count: int) -> list[dict]:
    schema = TABLES[name][0]
    return [{f.name: value(f.type, i, f.name) for f in schema} for i in range(start, start + count)]


def fill(run: RunFolder, commits: int = 3, per_commit: int = 4, tables=None) -> RunFolder:
    """`commits` commits of `per_commit` new rows into each table (merge-by-key upserts)."""
    for name in tables or TABLES:
        for c in range(commits):
            run.write(name, rows(name, c * per_commit, per_commit), {"stage": "test"})
    return run


NODES = ("speaker > gender", "content > language")


def kept_rows(start: int, count: int) -> list[dict]:
    """`kept` rows whose keys cycle A-D and whose nodes alternate between the two NODES (figures a test
    can recount: letter balance, items per node)."""
    out = rows("kept", start, count)
    for i, r in enumerate(out):
        r["answer"] = "ABCD"[(start + i) % 4]
        r["node_path"] = NODES[(start + i) % 2]
    return out
