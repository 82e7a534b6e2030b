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
        wanted = {k["clip_id"] for k in new}
        clips = {c["clip_id"]: c for c in run.table("clips").read(columns=["clip_id", "audio", "duration_s"]).to_pylist()
                 if c["clip_id"] in wanted}
        version = 0 if not corpus.exists() else corpus.version() + 1
        rows = [{**k, "audio": clips[k["clip_id"]]["audio"], "duration_s": clips[k["clip_id"]]["duration_s"],
                 "published_version": version, "producer": PRODUCER} for k in new]
        stats.rows_out = run.write("corpus", rows, {"stage": "publish"})
    if not corpus.exists():
        return stats, {}
    version = corpus.version()
    folder = export_folder(run, version)
    if folder is not None and not (folder / "summary.json").exists():
        summary = summarize(run, version)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".v{version}-"))
        try:
            data = corpus.read(version=version)
            export_hf(data.drop_columns(["published_version"]), staging)
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


