"""Publish: `kept` -> a new version of `corpus` (self-contained: the audio travels with each item),
then, for that version, an export folder `published/corpus-vN/` with Hugging Face Parquet shards, the data card
(README.md), the quality report (report.html + plots/) and summary.json.

A corpus version is immutable: publishing again with nothing new adds no version; the export folder
is written to a temporary name and renamed, so a reader never sees half of it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dataflux.history import history as history_rows
from dataflux.history import record as record_history
from dataflux.report import summarize, write_report
from dataflux.runners.base import StageStats
from dataflux.step import Context, Step, run_step
from storage.export import export_hf
from storage.run_folder import RunFolder
from storage.schemas import conform_table

PRODUCER = "publish@1"


class Publish(Step):
    """Append the kept items not yet in `corpus` as one new version, then export that version."""

    name, reads, writes, done_column = "publish", ("kept",), "corpus", "question_id"
    commit_rows = None  # the corpus version is one streaming append (audio included), not buffered rows

    def candidates(self, ctx: Context) -> pa.Table:
        return ctx.run.table("kept").read(columns=["question_id", "clip_id"])

    def process(self, ctx: Context, pending: pa.Table, stats: StageStats, out: None) -> None:
        corpus = ctx.run.table("corpus")
        version = 0 if not corpus.exists() else corpus.version() + 1
        clip_ids = pc.unique(pending["clip_id"])
        missing = pc.filter(clip_ids, pc.invert(pc.is_in(
            clip_ids, value_set=ctx.run.table("clips").read(columns=["clip_id"])["clip_id"])))
        if len(missing):  # refused before the commit: no version without them
            raise RuntimeError(f"publish: {len(missing)} kept clips are not in the clips table, e.g. "
                               f"{pc.min(missing).as_py()}")
        kept = ctx.run.table("kept").read(where=("question_id", pending["question_id"]))

        def rows():  # the kept items with their clip's audio, a bounded number of clips at a time
            for clips in ctx.run.table("clips").scan(["clip_id", "audio", "duration_s"],
                                                     ("clip_id", set(clip_ids.to_pylist())), 512):
                items = kept.filter(pc.is_in(kept["clip_id"], value_set=clips["clip_id"]))
                at = pc.index_in(items["clip_id"], value_set=clips["clip_id"])
                audio = clips.select(["audio", "duration_s"]).take(at)
                n = items.num_rows
                yield conform_table(items.drop_columns(["producer"]).append_column("audio", audio["audio"])
                                    .append_column("duration_s", audio["duration_s"])
                                    .append_column("published_version", pa.array([version] * n, pa.int64()))
                                    .append_column("producer", pa.array([PRODUCER] * n, pa.string())), corpus.schema)

        stats.rows_in = pending.num_rows
        stats.rows_out = corpus.append(rows(), {"stage": "publish"})

    def finish(self, ctx: Context, stats: StageStats) -> None:
        """Export the latest version if it has no export yet (also after a crash between commit and export)."""
        corpus = ctx.run.table("corpus")
        if not corpus.exists():
            return
        version = corpus.version()
        folder = export_folder(ctx.run, version)
        if folder is not None and not (folder / "summary.json").exists():
            summary = summarize(ctx.run, version)
            staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".v{version}-"))
            try:
                chunks = (t.drop_columns(["published_version"]) for t in corpus.scan(chunk_rows=1000, version=version))
                export_hf(chunks, staging, corpus.num_rows(version))
                record_history(ctx.run, summary)  # corpus_history: this version's figures (once per version)
                write_report(summary, staging, history_rows(ctx.run).to_pylist())  # with quality over time
                staging.rename(folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        stats.extra.update({"corpus_version": version, "corpus_rows": corpus.num_rows(version),
                            "corpus_uri": corpus.uri, "export": str(folder) if folder else None})


def run_publish(run: RunFolder) -> StageStats:
    return run_step(Publish(), Context(run))


def export_folder(run: RunFolder, version: int) -> Path | None:
    if run.local_path is None:
        return None  # object-store runs: export with `dataflux export` to a local folder
    folder = run.local_path / "published" / f"corpus-v{version}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder
