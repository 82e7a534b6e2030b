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
import pyarrow.parquet as pq

from dataflux.history import history as history_rows
from dataflux.history import record as record_history
from dataflux.report import summarize, write_report
from dataflux.runners.base import StageStats
from dataflux.step import Context, Step, run_step
from storage.export import export_hf
from storage.run_folder import RunFolder
from storage.schemas import conform_table
from storage.tables import Table

PRODUCER = "publish@1"
GROUP_ROWS = 4096  # kept rows held at once (about 2 KB each) while their clips' audio streams past
AUDIO_CLIPS = 512  # clips whose audio is held at once
SPILL_ROWS = 4096  # kept rows read at once while they are spilled by group


class Publish(Step):
    """Append the kept items not yet in `corpus` as one new version, then export that version."""

    name, reads, writes, done_column = "publish", ("kept",), "corpus", "question_id"
    commit_rows = None  # the corpus version is one streaming append (audio included), not buffered rows

    def candidates(self, ctx: Context) -> pa.Table:
        return ctx.run.table("kept").read(columns=["question_id", "clip_id"])

    def process(self, ctx: Context, pending: pa.Table, stats: StageStats, out: None) -> None:
        corpus = ctx.run.table("corpus")
        version = 0 if not corpus.exists() else corpus.version() + 1
        clips = ctx.run.table("clips")
        snapshot = clips.version()
        wanted = set(pc.unique(pending["clip_id"]).to_pylist())
        order = clips.scan(["clip_id"], ("clip_id", wanted), 1 << 16, snapshot)  # file order, as the audio comes
        order = pa.concat_arrays([pa.array([], pa.string()), *(c["clip_id"].combine_chunks() for c in order)])
        if len(order) < len(wanted):  # refused before the commit: no version without them
            missing = wanted - set(order.to_pylist())
            raise RuntimeError(f"publish: {len(missing)} kept clips are not in the clips table, e.g. {min(missing)}")
        groups = kept_groups(pending, order)
        with tempfile.TemporaryDirectory(prefix="dataflux-publish-") as spill:
            spill_groups(ctx.run.table("kept"), pending["question_id"], groups, Path(spill))

            def rows():  # the kept items with their clip's audio, a bounded number of clips at a time
                held: dict[int, pa.Table] = {}  # group -> its kept rows, for the groups of the chunk at hand
                for audio in clips.scan(["clip_id", "audio", "duration_s"], ("clip_id", wanted), AUDIO_CLIPS,
                                        snapshot):
                    at = pc.index_in(audio["clip_id"], value_set=groups["clip_id"])
                    near = pc.unique(pc.take(groups["group"], at)).to_pylist()
                    held = {g: held[g] if g in held else pq.read_table(Path(spill) / f"{g}.parquet") for g in near}
                    candidates = pa.concat_tables(held.values())
                    items = candidates.filter(pc.is_in(candidates["clip_id"], value_set=audio["clip_id"]))
                    at = pc.index_in(items["clip_id"], value_set=audio["clip_id"])
                    audio = audio.select(["audio", "duration_s"]).take(at)
                    n = items.num_rows
                    yield conform_table(
                        items.drop_columns(["producer"]).append_column("audio", audio["audio"])
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


def kept_groups(pending: pa.Table, order: pa.Array, rows: int | None = None) -> pa.Table:
    """(clip_id, group): the pending clips in `order` (the order their audio is read), cut into groups
    of consecutive clips holding about `rows` pending items each, so that publish holds one or two
    groups' kept rows, not the whole table, while the audio streams past."""
    rows = rows or GROUP_ROWS
    counts = pc.value_counts(pending["clip_id"])
    per_clip = pc.take(counts.field("counts"), pc.index_in(order, value_set=counts.field("values")))
    before = pc.subtract(pc.cumulative_sum(per_clip), per_clip)  # pending items of the clips before each
    return pa.table({"clip_id": order, "group": pc.divide(before, rows)})


def spill_groups(kept: Table, questions: pa.ChunkedArray, groups: pa.Table, folder: Path) -> None:
    """The kept rows of `questions`, read once, a chunk at a time, into `folder/<group>.parquet` by their
    clip's group: each group is then read whole when its clips' audio comes."""
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for chunk in kept.scan(where=("question_id", set(questions.to_pylist())), chunk_rows=SPILL_ROWS):
            group = pc.take(groups["group"], pc.index_in(chunk["clip_id"], value_set=groups["clip_id"]))
            for g in pc.unique(group).to_pylist():
                if g not in writers:
                    writers[g] = pq.ParquetWriter(folder / f"{g}.parquet", chunk.schema)
                writers[g].write_table(chunk.filter(pc.equal(group, g)))
    finally:
        for writer in writers.values():
            writer.close()


def run_publish(run: RunFolder) -> StageStats:
    return run_step(Publish(), Context(run))


def export_folder(run: RunFolder, version: int) -> Path | None:
    if run.local_path is None:
        return None  # object-store runs: export with `dataflux export` to a local folder
    folder = run.local_path / "published" / f"corpus-v{version}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder
