"""Publish: `kept` -> a new version of `corpus` (self-contained: the audio travels with each item),
then, for that version, an export folder `published/corpus-vN/` with Hugging Face Parquet shards, the data card
(README.md), the quality report (report.html + plots/) and summary.json.

A corpus version is immutable: publishing again with nothing new adds no version; the export folder
is written to a temporary name and renamed, so a reader never sees half of it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path


from dataflux.report import summarize, write_report
from dataflux.runners.base import StageStats
from storage.export import export_hf
from storage.run_folder import RunFolder
from storage.schemas import conform

PRODUCER = "publish@1"


def run_publish(run: RunFolder) -> tuple[StageStats, dict]:
    start = time.perf_counter()
    stats, summary = _publish(run)
    stats.seconds = time.perf_counter() - start
    return stats, summary


def _publish(run: RunFolder) -> tuple[StageStats, dict]:
    kept = run.table("kept").read().to_pylist() if run.table("kept").exists() else []
    corpus = run.table("corpus")
    have = set(corpus.read(columns=["question_id"])["question_id"].to_pylist()) if corpus.exists() else set()
    new = [k for k in kept if k["question_id"] not in have]
    stats = StageStats("publish", rows_in=len(new), skipped=len(kept) - len(new))
    if new:
        version = 0 if not corpus.exists() else corpus.version() + 1
        by_clip: dict[str, list[dict]] = {}
        for k in new:
            by_clip.setdefault(k["clip_id"], []).append(k)

        def rows():  # the kept items with their clip's audio, a bounded number of clips at a time
            missing = set(by_clip)
            for clips in run.table("clips").scan(["clip_id", "audio", "duration_s"], ("clip_id", set(by_clip)), 512):
                missing -= set(clips["clip_id"].to_pylist())
                yield conform([{**k, "audio": c["audio"], "duration_s": c["duration_s"],
                                "published_version": version, "producer": PRODUCER}
                               for c in clips.to_pylist() for k in by_clip[c["clip_id"]]], corpus.schema)
            if missing:  # raised before the commit: no version without them
                raise RuntimeError(f"publish: {len(missing)} kept clips are not in the clips table, e.g. {min(missing)}")

        stats.rows_out = corpus.append(rows(), {"stage": "publish"})
    if not corpus.exists():
        return stats, {}
    version = corpus.version()
    folder = export_folder(run, version)
    if folder is not None and not (folder / "summary.json").exists():
        summary = summarize(run, version)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".v{version}-"))
        try:
            chunks = (t.drop_columns(["published_version"]) for t in corpus.scan(chunk_rows=1000, version=version))
            export_hf(chunks, staging, corpus.num_rows(version))
            write_report(summary, staging)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    summary = {"corpus_version": version, "corpus_rows": corpus.num_rows(version),
               "corpus_uri": corpus.uri, "export": str(folder) if folder else None}
    stats.extra.update(summary)
    return stats, summary


def export_folder(run: RunFolder, version: int) -> Path | None:
    if run.local_path is None:
        return None  # object-store runs: export with `dataflux export` to a local folder
    folder = run.local_path / "published" / f"corpus-v{version}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


