"""Cross-verify: questions -> `verdicts`. Two (or more) answerers answer each question from the
audio, then a judge adjudicates. An item is a question; it ends as one verdict row or one reject
(`answer_failed`, `judge_failed`).

The chain runs on the pipeline's runner (Ray actor pools for the measuring answerers) as a table pass
over the clips that have pending questions: the audio is read where the chain runs and joined there to
each of the clip's questions (`ClipQuestions`), sorted together so an answerer measures a clip once.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from typing import Annotated, Any, Callable, Literal, Union

import pyarrow as pa
import pyarrow.compute as pc

from dataflux.annotate.tags import TagThresholds
from pydantic import Field, field_validator

from dataflux.llm.client import Endpoint, LocalEndpoint
from dataflux.llm.replicas import ServedEndpoint, role_endpoint
from dataflux.runners.base import Runner, StageStats, TablePass
from dataflux.settings import Section, one_of
from dataflux.shards import Shard
from dataflux.stage import Resources, Result, Stage
from dataflux.step import Context, Step, run_step
from storage.run_folder import RunFolder
from verifiers.answerers import answers_of
from verifiers.blind import BlindConfig
from storage.writer import BufferedWriter

PRODUCER = "verify@1"


class AnalyzerAnswererConfig(Section):
    """Measures the audio again with an independent stack and maps the options onto the measurement."""

    name: str
    backend: Literal["analyzer"]
    stack: Literal["whisper", "signal"] = "whisper"


class OpenAIAnswererConfig(Section):
    """An audio LLM behind any OpenAI-compatible endpoint."""

    name: str
    backend: Literal["openai"]
    endpoint: Endpoint


class EurekaAnswererConfig(Section):
    """A checkpoint of the training stage."""

    name: str
    backend: Literal["eureka"]
    checkpoint: str


class ServedAnswererConfig(Section):
    """An audio LM served on the Ray cluster by the pipeline (`vllm`: vLLM's engine; `hf`: transformers)."""

    name: str
    backend: Literal["vllm", "hf"]
    endpoint: ServedEndpoint
    max_tokens: int = 2048
    params: dict[str, Any] = {}  # more sampling parameters for this role (top_p, logit_bias, ...); in the cache key


AnswererConfig = Annotated[Union[AnalyzerAnswererConfig, OpenAIAnswererConfig, EurekaAnswererConfig,
                                 ServedAnswererConfig],
                           Field(discriminator="backend")]


class RulesJudgeConfig(Section):
    """Deterministic: the template's key, or the measured tags."""

    backend: Literal["rules"] = "rules"


class LocalJudgeConfig(Section):
    """The embedded llama.cpp server (started for the stage unless `endpoint.base_url` names one)."""

    backend: Literal["local"] = "local"
    endpoint: LocalEndpoint = LocalEndpoint()
    rules_dir: str | None = None  # per-domain rules (`<domain>.md`); the packaged ones by default


class OpenAIJudgeConfig(Section):
    backend: Literal["openai"] = "openai"
    endpoint: Endpoint
    rules_dir: str | None = None


class VllmJudgeConfig(Section):
    """A text LM served by vLLM on the Ray cluster."""

    backend: Literal["vllm"] = "vllm"
    endpoint: ServedEndpoint
    rules_dir: str | None = None


class HfJudgeConfig(VllmJudgeConfig):
    backend: Literal["hf"] = "hf"


JudgeConfig = one_of("backend", RulesJudgeConfig, LocalJudgeConfig, OpenAIJudgeConfig, VllmJudgeConfig,
                     HfJudgeConfig)
DEFAULT_ANSWERERS = (AnalyzerAnswererConfig(name="listener_a", backend="analyzer", stack="whisper"),
                     AnalyzerAnswererConfig(name="listener_b", backend="analyzer", stack="signal"))


class VerifyConfig(Section):
    answerers: tuple[AnswererConfig, ...] = DEFAULT_ANSWERERS
    judge: JudgeConfig = RulesJudgeConfig()
    batch_size: int = 16
    threads: int = 0
    num_cpus: float = 0.5  # per measuring answerer actor
    chunk_clips: int = 1024  # clips whose audio (with all their questions) is in memory at once
    blind: BlindConfig = BlindConfig()  # the text-only answerer: is an item answerable without the audio?

    @field_validator("answerers")
    @classmethod
    def _two_named_answerers(cls, answerers: tuple) -> tuple:
        if len(answerers) < 2:
            raise ValueError("verify needs at least two answerers")
        names = [a.name for a in answerers]
        if len(set(names)) != len(names):
            raise ValueError(f"every answerer needs a distinct name, got {', '.join(names)}")
        return answerers


def build_chain(config: VerifyConfig, thresholds: TagThresholds, cache_path: str | None,
                stack: ExitStack) -> list[Stage]:
    from verifiers.answerers import AnalyzerAnswerer, OpenAIAnswerer
    from verifiers.judges import LLMJudge, RulesJudge

    chain: list[Stage] = []
    for spec in config.answerers:
        if spec.backend == "analyzer":
            res = Resources(num_cpus=config.num_cpus, batch_size=config.batch_size)
            chain.append(AnalyzerAnswerer(spec.name, spec.stack, thresholds, config.threads, res))
        elif spec.backend in ("openai", "vllm", "hf"):
            chain.append(OpenAIAnswerer(spec.name, role_endpoint(stack, spec.backend, spec.endpoint), cache_path,
                                        backend=spec.backend, max_tokens=getattr(spec, "max_tokens", 2048),
                                        params=getattr(spec, "params", None),
                                        resources=Resources(num_cpus=0.1, batch_size=config.batch_size)))
        else:
            from verifiers.eureka import EurekaAnswerer  # the training stage's checkpoints

            chain.append(EurekaAnswerer(spec.name, spec.checkpoint,
                                        resources=Resources(num_cpus=1.0, batch_size=config.batch_size)))
    blind = config.blind
    if blind.backend != "off":
        from verifiers.blind import BlindAnswerer

        endpoint = None if blind.backend == "rules" else role_endpoint(
            stack, blind.backend, blind.endpoint or LocalEndpoint())
        chain.append(BlindAnswerer(blind, endpoint, cache_path, Resources(num_cpus=0.1, batch_size=config.batch_size)))
    judge = config.judge
    if judge.backend == "rules":
        chain.append(RulesJudge())
    else:
        chain.append(LLMJudge(role_endpoint(stack, judge.backend, judge.endpoint), cache_path, judge.backend,
                              judge.rules_dir))
    return chain


def verdict_row(item: dict) -> dict:
    v = json.loads(item["verdict"])
    return {"question_id": item["question_id"], "clip_id": item["clip_id"], "node_path": item["node_path"],
            "round": item["round"], "answers": answers_of(item), "consensus": v["consensus"],
            "consistency_with_caption": v["consistency_with_caption"], "winner": v["winner"],
            "judge_reasoning": v["reasoning"], "final_action": v["final_action"],
            "judge_backend": item["judge_backend"], "judge_model": item["judge_model"],
            "judge_prompt_version": item["judge_prompt_version"], "judge_raw": item["judge_raw"],
            "blind": item.get("blind"), "producer": PRODUCER, "backend": item["judge_backend"],
            "model_id": item["judge_model"]}


def verdict_rows(items: list[dict]) -> list[dict]:
    return [verdict_row(item) for item in items]


class ClipQuestions:
    """A table pass's expansion for verify: clip rows (with their audio) -> the pending questions of those
    clips as items, each with the clip's audio and annotation, a clip's questions together (so an
    answerer measures a clip once). Runs where the clips are read: on Ray, the workers."""

    def __init__(self, questions: pa.Table, annotations: pa.Table):
        self.questions, self.annotations = questions, annotations
        ids = "\n".join(sorted(questions["question_id"].to_pylist()))
        self.ident = hashlib.sha256(ids.encode()).hexdigest()

    def __call__(self, clips: pa.Table) -> pa.Table:
        items = self.questions.filter(pc.is_in(self.questions["clip_id"], value_set=clips["clip_id"]))
        items = items.sort_by([("clip_id", "ascending"), ("question_id", "ascending")])
        at = pc.index_in(items["clip_id"], value_set=clips["clip_id"])
        notes = self.annotations.filter(pc.is_in(self.annotations["clip_id"], value_set=clips["clip_id"]))
        by_clip = {a["clip_id"]: json.dumps(a, default=str) for a in notes.to_pylist()}
        n = items.num_rows
        return (items.append_column("audio", clips["audio"].take(at))
                .append_column("duration_s", clips["duration_s"].take(at))
                .append_column("answers", pa.array(["[]"] * n, pa.string()))
                .append_column("annotation", pa.array([by_clip.get(c, "{}") for c in items["clip_id"].to_pylist()],
                                                      pa.string())))


class _VerifyRejects:
    """The chain's rejects as verify's own (`stage: verify`), on their way to the buffered writer."""

    def __init__(self, out: BufferedWriter):
        self.out = out

    def add(self, result: Result) -> None:
        self.out.add(Result(result.rows, [{**r, "stage": "verify"} for r in result.rejects]))


class Verify(Step):
    """Answer and judge every question (in the shard) without a verdict or a verify reject."""

    name, reads, writes, done_column = "verify", ("questions",), "verdicts", "question_id"

    def __init__(self, config: VerifyConfig = VerifyConfig(), thresholds: TagThresholds = TagThresholds()):
        self.config, self.thresholds = config, thresholds

    def candidates(self, ctx: Context) -> pa.Table:
        return ctx.run.table("questions").read(columns=["question_id", "clip_id"])

    def process(self, ctx: Context, pending: pa.Table, stats: StageStats, out: BufferedWriter) -> None:
        clips = ctx.run.table("clips")
        version = clips.version()
        clip_ids = pc.unique(pending["clip_id"])
        missing = pc.filter(clip_ids, pc.invert(pc.is_in(clip_ids, value_set=clips.read(
            version, ["clip_id"])["clip_id"])))
        if len(missing):  # refused before any answer is committed
            raise ValueError(f"{len(missing)} clips with questions are not in the clips table, e.g. "
                             f"{pc.min(missing).as_py()}")
        questions = ctx.run.table("questions").read(where=("question_id", pending["question_id"]))
        notes = ctx.run.table("annotations").read(where=("clip_id", clip_ids))
        # The clips' audio is read where the chain runs (on Ray: the workers) and joined to the questions
        # there; only the question and annotation metadata leave this process.
        spec = TablePass(clips, version, frozenset(clip_ids.to_pylist()), ("clip_id", "audio", "duration_s"),
                         ctx.run.table(self.writes), verdict_rows, {"stage": self.name}, self.config.chunk_clips,
                         ClipQuestions(questions, notes))
        with ExitStack() as stack:
            chain = build_chain(self.config, self.thresholds, ctx.run.llm_cache, stack)
            ctx.runner.run_pass(chain, spec, stats, _VerifyRejects(out), ctx.on_progress)


def run_verify(run: RunFolder, runner: Runner, config: VerifyConfig = VerifyConfig(),
               thresholds: TagThresholds = TagThresholds(),
               on_progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None, shard: Shard | None = None) -> StageStats:
    return run_step(Verify(config, thresholds), Context(run, runner, shard, on_progress, on_total))
