"""Ingest: source files -> `clips` (16 kHz mono FLAC, content-addressed) or rejects with a reason.

The decode step runs on workers (local or Ray). Deduplication needs to see every clip, so it runs
in the driver, in input order, against what the table already holds: re-runs and crash recoveries
make the same choices as one uninterrupted run.
"""

from __future__ import annotations

from typing import Callable

import fsspec
import pyarrow as pa

from dataflux.audio import (TARGET_SR, AudioError, Limits, decode, encode_flac, pcm16_hash, split_points,
                           to_mono_16k, to_pcm16)
from dataflux.runners.base import Runner, StageStats, audio_seconds
from dataflux.settings import Section
from dataflux.sources import list_source
from dataflux.stage import Resources, Result, Stage
from dataflux.step import Context, Step, run_step
from storage.run_folder import RunFolder
from storage.writer import BufferedWriter


SOURCE_ITEMS = pa.schema([(name, pa.string()) for name in ("uri", "metadata", "error_code", "error_detail")])


class IngestConfig(Section):
    max_file_mb: float = 512.0
    limits: Limits = Limits()
    batch_size: int = 8
    num_cpus: float = 1.0
    concurrency: int = 1
    commit_rows: int = 512  # rows (clips + rejects) buffered before a table commit


class DecodeAudio(Stage):
    name = "ingest"
    version = "1"
    inputs = ("uri", "metadata", "error_code", "error_detail")

    def __init__(self, config: IngestConfig = IngestConfig()):
        super().__init__(Resources(num_cpus=config.num_cpus, batch_size=config.batch_size,
                                   concurrency=config.concurrency))
        self.config = config

    def process_batch(self, items: list[dict]) -> Result:
        result = Result()
        for item in items:
            uri = item["uri"]
            if item.get("error_code"):
                result.rejects.append(self.reject(uri, item["error_code"], item["error_detail"], uri))
                continue
            try:
                result.rows.extend(self.clips(uri, self.read(uri), item.get("metadata")))
            except AudioError as e:
                result.rejects.append(self.reject(uri, e.reason_code, e.detail, uri))
        return result

    def read(self, uri: str) -> bytes:
        limit = int(self.config.max_file_mb * 1e6)
        try:
            with (open(uri, "rb") if "://" not in uri else fsspec.open(uri, "rb").open()) as f:
                size = getattr(f, "size", None)
                if size is None:
                    size = f.seek(0, 2)
                    f.seek(0)
                if size > limit:
                    raise AudioError("file_too_large", f"{size} bytes is over the {limit}-byte limit")
                return f.read()
        except AudioError:
            raise
        except (OSError, ValueError) as e:
            raise AudioError("unreadable", f"{type(e).__name__}: {e}") from None

    def clips(self, uri: str, data: bytes, metadata: str | None) -> list[dict]:
        decoded = decode(data, self.config.limits)
        pcm = to_pcm16(to_mono_16k(decoded))
        ranges = split_points(pcm, self.config.limits)
        content_hash = pcm16_hash(pcm)
        rows = []
        for index, (start, end) in enumerate(ranges):
            segment = pcm[start:end]
            segment_hash = content_hash if len(ranges) == 1 else pcm16_hash(segment)
            rows.append({
                "clip_id": "clp_" + segment_hash[:32], "source_uri": uri, "segment_index": index,
                "num_segments": len(ranges), "start_s": start / TARGET_SR, "duration_s": (end - start) / TARGET_SR,
                "sample_rate": TARGET_SR, "num_samples": end - start, "orig_sample_rate": decoded.sample_rate,
                "orig_channels": decoded.samples.shape[1], "orig_format": decoded.container,
                "content_hash": content_hash, "metadata": metadata, "audio": encode_flac(segment),
                "producer": self.producer, "backend": decoded.decoder, "model_id": None,
            })
        return rows


class Deduplicator:
    """Driver-side: the first file (in input order) with some content keeps it.

    A later file with the same decoded audio is a `duplicate_content` reject; a segment of a new file
    that equals an existing clip is a `duplicate_segment` reject (item `uri#index`) while the file's
    other segments are kept. If none of a file's segments is new, the whole file is a
    `duplicate_content` reject. So every input ends as >= 1 clip or exactly one file-level reject.
    """

    def __init__(self, stage: DecodeAudio, content_owner: dict[str, str], clip_ids: set[str]):
        self.stage = stage
        self.content_owner = content_owner  # content_hash -> source_uri of the kept file
        self.clip_ids = clip_ids

    def __call__(self, result: Result) -> Result:
        out = Result(rejects=list(result.rejects))
        by_file: dict[str, list[dict]] = {}
        for row in result.rows:
            by_file.setdefault(row["source_uri"], []).append(row)
        for uri, rows in by_file.items():
            content = rows[0]["content_hash"]
            if content in self.content_owner:
                out.rejects.append(self.stage.reject(
                    uri, "duplicate_content", f"same audio as {self.content_owner[content]}", uri))
                continue
            fresh, repeats, here = [], [], set()
            for row in rows:
                repeat = row["clip_id"] in self.clip_ids or row["clip_id"] in here
                (repeats if repeat else fresh).append(row)
                here.add(row["clip_id"])
            if not fresh:
                out.rejects.append(self.stage.reject(uri, "duplicate_content",
                                                     "every segment equals an existing clip", uri))
                continue
            out.rejects.extend(self.stage.reject(f"{uri}#{r['segment_index']}", "duplicate_segment",
                                                 f"segment equals clip {r['clip_id']}", uri) for r in repeats)
            out.rows.extend(fresh)
            self.content_owner[content] = uri
            self.clip_ids.update(r["clip_id"] for r in fresh)
        return out


class Ingest(Step):
    """Every input of `source` ends as clips or one reject; deduplication runs in input order on the driver."""

    name, reads, writes, done_column = "ingest", (), "clips", "source_uri"

    def __init__(self, source: str, config: IngestConfig = IngestConfig()):
        self.source, self.config = source, config
        self.commit_rows = config.commit_rows

    def candidates(self, ctx: Context) -> pa.Table:
        # Listed again every run: the source may have gained files.
        return pa.Table.from_pylist(list_source(self.source), schema=SOURCE_ITEMS)

    def keys(self, items: pa.Table) -> pa.Array:
        return items["uri"]

    def clip_ids(self, items: pa.Table) -> pa.Array:
        return items["uri"]  # ingest is never sharded: clip ids are what it makes

    def process(self, ctx: Context, pending: pa.Table, stats: StageStats, out: BufferedWriter) -> None:
        clips = ctx.run.table("clips").read(columns=["clip_id", "source_uri", "content_hash"])
        stage = DecodeAudio(self.config)
        dedup = Deduplicator(stage, dict(zip(clips["content_hash"].to_pylist(), clips["source_uri"].to_pylist())),
                             set(clips["clip_id"].to_pylist()))
        for result in ctx.runner.run(stage, pending.to_pylist(), stats, post=dedup, on_progress=ctx.on_progress):
            stats.add_audio(audio_seconds(result.rows), ctx.runner.name, [stage.name])  # decoded audio, on any node
            out.add(result)


def run_ingest(source: str, run: RunFolder, runner: Runner, config: IngestConfig = IngestConfig(),
               on_progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> StageStats:
    """Ingest every input of `source` not yet accounted for in `run` (as a clip or a reject)."""
    return run_step(Ingest(source, config), Context(run, runner, None, on_progress, on_total))
