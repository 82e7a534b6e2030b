"""List the inputs of a source: a local directory, a manifest file, or an fsspec URL.

Every file found becomes one input item; a listing problem (a path that escapes the source root,
an extension we do not decode) travels with the item as `error`, so ingest records it as a reject
instead of skipping it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".mp4", ".aac", ".aif",
                    ".aiff", ".webm"}
MANIFEST_EXTENSIONS = {".csv", ".jsonl", ".parquet"}
PATH_COLUMNS = ("path", "audio_path", "url", "uri", "file")


def list_source(source: str | os.PathLike) -> list[dict]:
    """Input items `{uri, metadata, error}`, sorted by uri so that every run sees the same order."""
    source = str(source)
    if _is_url(source) and not source.startswith("file://"):
        items = _list_url(source)
    else:
        path = Path(source.removeprefix("file://"))
        if path.is_dir():
            items = _list_dir(path)
        elif path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
            items = _list_manifest(path)
        elif path.is_file():
            items = [_item(str(path.resolve()))]
        else:
            raise FileNotFoundError(f"source {source!r} is neither a directory, a manifest "
                                    f"({', '.join(sorted(MANIFEST_EXTENSIONS))}) nor an audio file")
    items.sort(key=lambda i: i["uri"])
    return items


def _item(uri: str, metadata: dict | None = None, error: tuple[str, str] | None = None) -> dict:
    if error is None and Path(uri.split("?")[0]).suffix.lower() not in AUDIO_EXTENSIONS:
        error = ("unsupported_extension", f"not one of {' '.join(sorted(AUDIO_EXTENSIONS))}")
    return {"uri": uri, "metadata": json.dumps(metadata or {}, sort_keys=True, default=str),
            "error_code": error[0] if error else None, "error_detail": error[1] if error else None}


def _escape(uri: str, root: Path, target: str) -> dict:
    return _item(uri, error=("path_escape", f"resolves to {target}, outside the source root {root}"))


def _list_dir(root: Path) -> list[dict]:
    """Walk `root` recursively. Symlinks are followed only while they stay inside the root."""
    root = root.resolve()
    items: list[dict] = []
    seen_dirs: set[Path] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        real = folder.resolve()
        if real in seen_dirs:  # a symlink loop, or two links to one folder
            continue
        seen_dirs.add(real)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            target = path.resolve()
            if not target.is_relative_to(root):
                items.append(_escape(str(path), root, str(target)))
            elif target.is_dir():
                stack.append(path)
            elif target.is_file():
                items.append(_item(str(path)))
            else:
                items.append(_item(str(path), error=("not_a_file", "broken link or special file")))
    return items


def _list_manifest(manifest: Path) -> list[dict]:
    import pandas as pd

    suffix = manifest.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    elif suffix == ".jsonl":
        df = pd.read_json(manifest, lines=True, dtype=False)
    else:
        df = pd.read_parquet(manifest)
    column = next((c for c in PATH_COLUMNS if c in df.columns), None)
    if column is None:
        raise ValueError(f"manifest {manifest} needs one of the columns {', '.join(PATH_COLUMNS)}; "
                         f"it has {', '.join(map(str, df.columns))}")
    root = manifest.parent.resolve()
    items = []
    for record in df.to_dict("records"):
        ref = str(record.pop(column))
        metadata = {k: v for k, v in record.items() if v is not None and v == v}  # drop NaN
        if _is_url(ref) and not ref.startswith("file://"):
            items.append(_item(ref, metadata))
            continue
        path = Path(ref.removeprefix("file://"))
        path = path if path.is_absolute() else root / path
        target = path.resolve()
        if not target.is_relative_to(root):
            items.append(_escape(str(path), root, str(target)))
        else:
            items.append(_item(str(target), metadata))
    return items


def _list_url(url: str) -> list[dict]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    files = [path] if fs.isfile(path) else fs.find(path)
    return [_item(f"{protocol}://{f.lstrip('/')}" if protocol != "file" else f) for f in files]


def _is_url(ref: str) -> bool:
    return "://" in ref
