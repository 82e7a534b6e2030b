"""What the benchmark readers share: the layout error, audio decoding to 16 kHz mono, and reading a
Hugging Face dataset that is already on disk (a parquet folder as the Hub publishes it, or a
`datasets.save_to_disk` folder) without decoding its audio column through `datasets`; JSONL rows, and asking
an LLM of the request layer about rows not yet answered in a JSONL file (the judge, the caption answerer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


class LayoutError(ValueError):
    """A folder or file that is not in the layout the benchmark version publishes."""

    def __init__(self, benchmark: str, path: str | Path, expected: str, found: str = ""):
        self.benchmark = benchmark
        super().__init__(f"{benchmark}: {path} is not in the expected layout. Expected {expected}."
                         + (f" Found: {found}." if found else ""))


def read_audio(source) -> np.ndarray:
    """16 kHz mono float32 from a file path or encoded bytes (FLAC, WAV, MP3, ...)."""
    import io

    import soundfile as sf

    # bytes are resampled like a file: an HF Audio cell may hold any rate
    wave, sr = sf.read(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source),
                       dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if sr != SAMPLE_RATE:
        import soxr

        wave = soxr.resample(wave, sr, SAMPLE_RATE).astype(np.float32)
    return wave


def audio_of(value, root: Path):
    """An HF `Audio` cell ({"bytes", "path"}) or a path relative to `root`, decoded."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return read_audio(value["bytes"])
        value = value.get("path")
    if not value:
        raise ValueError("a row has no audio")
    path = Path(value)
    return read_audio(path if path.is_absolute() else root / path)


def hf_rows(path: Path, benchmark: str, expected: str, split: str | None = None) -> list[tuple[str, dict]]:
    """(split, row) pairs from parquet files (`SPLIT-00000-of-00001.parquet`, the Hub's layout) or a
    `save_to_disk` folder (a Dataset, or a DatasetDict whose folders are the splits). `split` keeps one."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise LayoutError(benchmark, path, expected, "no such file or folder")
    files = [path] if path.suffix == ".parquet" else sorted(path.glob("*.parquet"))
    if files:
        out = []
        for f in files:
            name = f.name.split("-0")[0] if "-0" in f.name else f.stem
            if split is None or name == split:
                out += [(name, r) for r in pq.read_table(f).to_pylist()]
        return out
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        import datasets

        ds = datasets.load_from_disk(str(path))
        parts = ds.items() if isinstance(ds, datasets.DatasetDict) else [(split or "test", ds)]
        # the arrow table itself: no audio decoding (which would need torchcodec) and no network
        return [(name, r) for name, d in parts if split is None or name == split for r in d.data.table.to_pylist()]
    raise LayoutError(benchmark, path, expected, ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "empty")


def require(row: dict, fields: tuple[str, ...], benchmark: str, path, expected: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise LayoutError(benchmark, path, expected, f"a row without {', '.join(missing)} (fields: {', '.join(row)})")


def jsonl(path: Path) -> list[dict]:
    """The rows of a JSONL file; none when it does not exist yet."""
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def ask_llm(rows: list[dict], out: Path, endpoint, cache_path: str | None, request, record) -> int:
    """Sends `request(row)` (keyword arguments of `LLMClient.complete`) to `endpoint` for each row whose id is
    not yet in `out`, and appends `record(row, reply)` there, `reply` being an `LLMError` when the request
    failed for good; returns how many were asked. Resumable: a re-run asks only what is missing."""
    from dataflux.llm.client import LLMClient, run_all

    done = {r["id"] for r in jsonl(out)}
    todo = [r for r in rows if r["id"] not in done]
    if not todo:
        return 0
    client = LLMClient.open(endpoint, cache_path)
    try:
        replies = run_all(client, [request(r) for r in todo])
    finally:
        client.close_cache()
    with open(out, "a") as f:
        for r, reply in zip(todo, replies):
            f.write(json.dumps(record(r, reply), ensure_ascii=False) + "\n")
    return len(todo)
