"""Cross-verify: questions -> `verdicts`. Two (or more) answerers answer each question from the
audio, then a judge adjudicates. An item is a question; it ends as one verdict row or one reject
(`answer_failed`, `judge_failed`).

The chain runs on the pipeline's runner (Ray actor pools for the measuring answerers); the audio of a
clip travels with each of its questions, sorted together so an answerer measures a clip once.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Annotated, Any, Callable, Iterator, Literal, Union

from dataflux.annotate.tags import TagThresholds
from pydantic import Field, field_validator

from dataflux.llm.client import Endpoint, LocalEndpoint
from dataflux.llm.replicas import ServedEndpoint, role_endpoint
from dataflux.runners.base import Runner, StageStats
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


def items_with_audio(run: RunFolder, pending: list[dict], chunk_clips: int) -> Iterator[list[dict]]:
    """The pending questions as items, with their clip's audio and annotation, a bounded number of
    clips' audio at a time; a clip's questions are together, so an answerer measures a clip once."""
    by_clip: dict[str, list[dict]] = {}
    for q in pending:
        by_clip.setdefault(q["clip_id"], []).append(q)
    missing = set(by_clip) - set(run.table("clips").read(columns=["clip_id"])["clip_id"].to_pylist())
    if missing:  # refused before any answer is committed
        raise ValueError(f"{len(missing)} clips with questions are not in the clips table, e.g. {min(missing)}")
    notes = {a["clip_id"]: a for a in run.table("annotations").read().to_pylist() if a["clip_id"] in by_clip}
    for chunk in run.table("clips").scan(["clip_id", "audio"], ("clip_id", set(by_clip)), chunk_clips):
        items = [{**q, "audio": clip["audio"], "answers": "[]",
                  "annotation": json.dumps(notes.get(clip["clip_id"]) or {}, default=str)}
                 for clip in chunk.to_pylist() for q in by_clip[clip["clip_id"]]]
        items.sort(key=lambda i: (i["clip_id"], i["question_id"]))
        yield items


class Verify(Step):
    """Answer and judge every question (in the shard) without a verdict or a verify reject."""

    name, reads, writes, done_column = "verify", ("questions",), "verdicts", "question_id"

    def __init__(self, config: VerifyConfig = VerifyConfig(), thresholds: TagThresholds = TagThresholds()):
        self.config, self.thresholds = config, thresholds

    def candidates(self, ctx: Context) -> list[dict]:
        return ctx.run.table("questions").read().to_pylist()

    def process(self, ctx: Context, pending: list[dict], stats: StageStats, out: BufferedWriter) -> None:
        cache_path = ctx.run.llm_cache

        def post(result: Result) -> Result:
            rejects = [{**r, "stage": "verify"} for r in result.rejects]
            return Result([verdict_row(item) for item in result.rows], rejects)

        with ExitStack() as stack:
            chain = build_chain(self.config, self.thresholds, cache_path, stack)
            for items in items_with_audio(ctx.run, pending, self.config.chunk_clips):
                for result in ctx.runner.run(chain, items, stats, post=post, on_progress=ctx.on_progress):
                    out.add(result)


def run_verify(run: RunFolder, runner: Runner, config: VerifyConfig = VerifyConfig(),
               thresholds: TagThresholds = TagThresholds(),
               on_progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None, shard: Shard | None = None) -> StageStats:
    return run_step(Verify(config, thresholds), Context(run, runner, shard, on_progress, on_total))
