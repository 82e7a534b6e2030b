"""Annotate: clips -> `annotations` (measured values with units, tags, a dense caption).

The chain (each entry one stage, so one actor pool on Ray; the model-backed ones alone in theirs):

    decode+levels -> vad -> asr -> snr+speaking_rate -> pitch -> gender -> speakers -> dnsmos -> acoustics
    -> tags+caption

Audio is decoded once per clip, at the head of the chain, and travels with the item.
"""

from __future__ import annotations

from contextlib import ExitStack

from typing import Callable, Literal

import pyarrow as pa

from dataflux.annotate.acoustics import Acoustics
from dataflux.annotate.asr import AsrConfig, SpeakingRate, Whisper
from dataflux.annotate.base import Analyzer
from dataflux.annotate.caption import AnyCaptionConfig, CaptionConfig, Captioner
from dataflux.annotate.pitch import Pitch
from dataflux.annotate.quality import Dnsmos
from dataflux.annotate.signal import DecodeClips, Levels, Snr
from dataflux.annotate.speaker import Gender, Speakers
from dataflux.annotate.tags import TagThresholds, Tagger
from dataflux.annotate.vad import SileroVad
from dataflux.runners.base import Runner, StageStats, TablePass, run_chain
from dataflux.settings import Section
from dataflux.shards import Shard
from dataflux.stage import Resources, Result, Stage
from dataflux.step import Context, Step, run_step
from storage.run_folder import RunFolder
from storage.writer import BufferedWriter

PRODUCER = "annotate@1"

# Declared CPUs per stage: what Ray schedules on. Their sum stays under 2 so that the whole chain's
# actors fit on a 2-core laptop at once (Ray Data stalls when an actor stage cannot be placed).
DEFAULT_CPUS = {"decode": 0.1, "vad": 0.2, "asr": 0.5, "measure": 0.1, "pitch": 0.1, "gender": 0.1,
                "speakers": 0.2, "dnsmos": 0.2, "acoustics": 0.1, "describe": 0.1}
REQUIRED = {"decode", "describe"}  # audio in, tags and caption out


ChainEntry = Literal[tuple(DEFAULT_CPUS)]


class EntryResources(Section):
    """What one chain entry declares to Ray; unset values keep the entry's defaults."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    concurrency: int | None = None
    batch_size: int | None = None
    custom: dict[str, float] | None = None  # Ray custom resources: the entry runs only on nodes that have them


class AnnotateConfig(Section):
    asr: AsrConfig = AsrConfig()
    caption: AnyCaptionConfig = CaptionConfig()
    tags: TagThresholds = TagThresholds()
    vad_threshold: float = 0.5
    min_speech_ratio: float = 0.15
    speaker_similarity: float = 0.89  # speaker turns: two halves of a clip less alike than this are two voices
    batch_size: int = 4
    threads: int = 0  # CPU threads per model; 0: every core (in-process). Set 1 when Ray runs many actors.
    resources: dict[ChainEntry, EntryResources] = {}  # e.g. {asr: {num_gpus: 1}}
    skip: tuple[str, ...] = ()  # chain entries left out, e.g. (asr, speakers, dnsmos): their fields stay empty
    chunk_clips: int = 2048  # clips whose audio is in memory at once (one runner pass each)


class Group(Stage):
    """Several cheap analyzers in one stage (one actor): their work is too small for a pool each."""

    version = "1"
    inputs = ("clip_id",)

    def __init__(self, name: str, stages: list[Stage], resources: Resources):
        super().__init__(resources)
        self.name = name
        self.stages = stages

    def setup(self) -> None:
        for s in self.stages:
            s.setup()

    def process_batch(self, items: list[dict]) -> Result:
        return run_chain(self.stages, items)

    def teardown(self) -> None:
        for s in self.stages:
            s.teardown()


def build_chain(config: AnnotateConfig) -> list[Stage]:
    def res(name: str) -> Resources:
        declared = config.resources.get(name, EntryResources()).model_dump(exclude_none=True)
        return Resources(**{"num_cpus": DEFAULT_CPUS[name], "batch_size": config.batch_size, **declared})

    asr = config.asr if config.asr.cpu_threads or not config.threads else config.asr.model_copy(
        update={"cpu_threads": config.threads})
    vad = SileroVad(config.vad_threshold, config.min_speech_ratio, resources=res("vad"))
    speakers = Speakers(config.speaker_similarity, resources=res("speakers"))
    vad.threads = speakers.threads = config.threads
    unknown = set(config.skip) - (set(DEFAULT_CPUS) - REQUIRED)
    if unknown:
        raise ValueError(f"annotate.skip: cannot skip {', '.join(sorted(unknown))}; skippable entries are "
                         f"{', '.join(sorted(set(DEFAULT_CPUS) - REQUIRED))}")
    chain = [
        Group("decode", [DecodeClips(), Levels()], res("decode")),
        vad,
        Whisper(asr, resources=res("asr")),
        Group("measure", [Snr(), SpeakingRate()], res("measure")),
        Pitch(resources=res("pitch")),
        Gender(resources=res("gender")),
        speakers,
        Dnsmos(config.threads, resources=res("dnsmos")),
        Acoustics(resources=res("acoustics")),
        Group("describe", [Tagger(config.tags), Captioner(config.caption)], res("describe")),
    ]
    return [stage for stage in chain if stage.name not in config.skip]


def analyzers(chain: list[Stage]) -> list[Analyzer]:
    out = []
    for stage in chain:
        out.extend(s for s in getattr(stage, "stages", [stage]) if isinstance(s, Analyzer))
    return out


class Annotate(Step):
    """Measure, tag and caption every clip that has no annotation (and no annotate reject) yet."""

    name, reads, writes, done_column = "annotate", ("clips",), "annotations", "clip_id"

    def __init__(self, config: AnnotateConfig = AnnotateConfig()):
        self.config = config

    def candidates(self, ctx: Context) -> pa.Table:
        return ctx.run.table("clips").read(columns=["clip_id"])

    def process(self, ctx: Context, pending: pa.Table, stats: StageStats, out: BufferedWriter) -> None:
        chain = build_chain(self.config)
        clips = ctx.run.table("clips")
        # The audio streams in bounded chunks (in-process), or never leaves the workers (Ray): memory on
        # the driver grows neither with the number of clips nor with their length.
        spec = TablePass(clips, clips.version(), frozenset(pending["clip_id"].to_pylist()),
                         ("clip_id", "audio", "duration_s"), ctx.run.table(self.writes), annotation_rows,
                         {"stage": self.name}, self.config.chunk_clips)
        cache_path = ctx.run.llm_cache
        with ExitStack() as stack:
            for captioner in (a for a in analyzers(chain) if isinstance(a, Captioner)):
                captioner.bind(stack, cache_path)  # an LLM captioner's endpoint (its replicas) and cache
            ctx.runner.run_pass(chain, spec, stats, out, ctx.on_progress)


def annotation_rows(rows: list[dict]) -> list[dict]:
    """Chain output -> annotations rows: the decoded PCM dropped, lineage added."""
    return [{**{k: v for k, v in row.items() if k != "pcm"}, "producer": PRODUCER, "backend": "embedded",
             "model_id": row.get("asr_model")} for row in rows]


def run_annotate(run: RunFolder, runner: Runner, config: AnnotateConfig = AnnotateConfig(),
                 on_progress: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None, shard: Shard | None = None) -> StageStats:
    """Annotate every clip of `run` (in `shard`) that has no annotation (and no annotate reject) yet."""
    return run_step(Annotate(config), Context(run, runner, shard, on_progress, on_total))
