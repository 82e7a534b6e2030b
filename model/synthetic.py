"""Tiny synthetic training data of every family (tones described in words), written as the real formats
read them: for the stage presets' smoke runs, tests and benchmarks on CPU. Not training data for a model
anyone should use.

    python -m model.synthetic OUT [--rows 32] [--shards 2]

writes OUT/{asr,caption,paralinguistic,text}/ (Parquet) and OUT/semantic/ (ms-swift JSONL + FLAC): the
folders model/configs/*.yaml name (run from OUT's parent with OUT=data).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

WORDS = ["low", "middle", "high", "very high"]
PITCHES = [220.0, 440.0, 880.0, 1760.0]


def tone(i: int, seconds: float = 0.4, sr: int = 16000) -> tuple[bytes, int]:
    """A FLAC tone whose pitch (one of four) the row's text names; returns (bytes, pitch index)."""
    import soundfile as sf

    k = i % len(PITCHES)
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * PITCHES[k] * t) * (1 + 0.1 * (i % 3))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="FLAC")
    return buf.getvalue(), k


def rows_for(family: str, n: int, start: int = 0) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        audio, k = tone(i)
        if family == "asr":
            rows.append({"id": f"asr-{i}", "audio": audio, "text": f"a {WORDS[k]} tone"})
        elif family == "caption":
            rows.append({"id": f"cap-{i}", "audio": audio, "caption": f"A steady {WORDS[k]} pitched tone, no speech."})
        elif family == "paralinguistic":
            options = [f"{w} pitch" for w in WORDS]
            rows.append({"question_id": f"{family}-{i}", "clip_id": f"clip-{i}", "audio": audio,
                         "question": "How high is the tone?", "options": options, "answer": "ABCD"[k],
                         "target": f"The tone sounds {WORDS[k]}. Answer: {'ABCD'[k]}", "hard": i % 4 == 0,
                         "node_path": "pitch"})
        elif family == "text":
            rows.append({"id": f"text-{i}", "instruction": f"Name pitch level {k}.", "output": WORDS[k]})
        else:
            raise ValueError(family)
    return rows


def write_parquet_source(folder: Path, family: str, rows: int, shards: int, start: int = 0) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    per = -(-rows // shards)
    for s in range(shards):
        part = rows_for(family, min(per, rows - s * per), start + s * per)
        if part:
            pq.write_table(pa.Table.from_pylist(part), folder / f"part-{s:05d}.parquet")
    return folder


def write_swift_source(folder: Path, rows: int) -> Path:
    """ms-swift JSONL (`messages` + `audios`, paths relative to the file), as `dataflux export --format swift`."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    with open(folder / "data.jsonl", "w") as f:
        for i in range(rows):
            audio, k = tone(i)
            (folder / "audio" / f"{i}.flac").write_bytes(audio)
            f.write(json.dumps({"messages": [{"role": "user", "content": "<audio>Is the tone high or low?"},
                                             {"role": "assistant", "content": "high" if k >= 2 else "low"}],
                                "audios": [f"audio/{i}.flac"]}) + "\n")
    return folder


def write_all(out: Path, rows: int = 32, shards: int = 2) -> dict[str, str]:
    families = ("asr", "caption", "paralinguistic", "text")
    paths = {f: str(write_parquet_source(out / f, f, rows, shards)) for f in families}
    paths["semantic"] = str(write_swift_source(out / "semantic", rows))
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--shards", type=int, default=2)
    a = p.parse_args(argv)
    print(json.dumps(write_all(Path(a.out), a.rows, a.shards), indent=2))


if __name__ == "__main__":
    main()
