"""Generate: annotations -> `questions`, one taxonomy node at a time per clip.

An input item is a (clip, taxonomy node, round) triple; it ends as one or more questions or exactly
one reject (`node_mismatch`, `invalid_output`, `malformed_question`), under item id
`clip_id|node_path|rROUND`.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Callable, Literal

from pydantic import Field

from dataflux.generate.assign import assign_nodes
from dataflux.generate.writers import MAX_QUESTIONS_PER_NODE, LLMWriter, TemplateWriter, item_id
from dataflux.llm.client import Endpoint, LocalEndpoint
from dataflux.llm.replicas import ServedEndpoint, role_endpoint
from dataflux.runners.base import StageStats
from dataflux.shards import Shard
from dataflux.stages.loop import retry_items
from dataflux.step import Context, Step, run_step
from dataflux.runners.local import LocalRunner
from dataflux.settings import Section, one_of
from dataflux.stage import Resources
from dataflux.taxonomy import load_taxonomy
from storage.run_folder import RunFolder
from storage.writer import BufferedWriter


class GenerateConfig(Section):
    """The template writer (the default: questions from measured tags, with a known key); the LLM
    writers below add their endpoint."""

    writer: Literal["template"] = "template"
    questions_per_node: int = Field(5, ge=1, le=MAX_QUESTIONS_PER_NODE)
    max_tokens: int = Field(1024, ge=16)  # per LLM writer request
    max_nodes_per_clip: int = 3
    taxonomy: str | None = None  # a YAML file; the packaged taxonomy by default
    batch_size: int = 16


class LocalWriterConfig(GenerateConfig):
    """The embedded llama.cpp server (started for the stage unless `endpoint.base_url` names one)."""

    writer: Literal["local"] = "local"
    endpoint: LocalEndpoint = LocalEndpoint()


class OpenAIWriterConfig(GenerateConfig):
    """Any OpenAI-compatible endpoint."""

    writer: Literal["openai"] = "openai"
    endpoint: Endpoint


class VllmWriterConfig(GenerateConfig):
    """A text LM served by vLLM on the Ray cluster (`dataflux.llm.replicas`)."""

    writer: Literal["vllm"] = "vllm"
    endpoint: ServedEndpoint


class HfWriterConfig(VllmWriterConfig):
    """A text LM run by transformers on the Ray cluster."""

    writer: Literal["hf"] = "hf"


AnyGenerateConfig = one_of("writer", GenerateConfig, LocalWriterConfig, OpenAIWriterConfig, VllmWriterConfig,
                           HfWriterConfig)


def make_writer(config: GenerateConfig, endpoint: Endpoint | None, cache_path: str | None):
    resources = Resources(num_cpus=0.1, batch_size=config.batch_size)
    if config.writer == "template":
        return TemplateWriter(resources)
    return LLMWriter(endpoint, cache_path, config.writer, config.questions_per_node, config.max_tokens, resources)


def closed_loop_items(run: RunFolder, annotations: list[dict], config: GenerateConfig, max_rounds: int) -> list[dict]:
    """Rounds 1..max_rounds: the (clip, node) pairs whose questions were rejected for fixable reasons."""
    if max_rounds <= 0:
        return []
    leaves = {leaf.node_path: leaf for leaf in load_taxonomy(config.taxonomy)}
    by_clip = {a["clip_id"]: a for a in annotations}
    return [{"clip_id": r["clip_id"], "leaf": leaves[r["node_path"]], "annotation": by_clip[r["clip_id"]],
             "round": r["round"], "n": min(r["n"], config.questions_per_node), "feedback": r["feedback"]}
            for r in retry_items(run, max_rounds) if r["node_path"] in leaves and r["clip_id"] in by_clip]


class Generate(Step):
    """Write questions for every (clip, node, round) not yet accounted for; rounds after the first come
    from the closed loop (fixable rejects, up to `max_rounds`).

    The writer runs in this process whatever the pipeline's runner: it is I/O-bound, and its
    concurrency comes from asynchronous requests bounded per endpoint, not from workers.
    """

    name, reads, writes = "generate", ("annotations", "rejects", "kept"), "questions"

    def __init__(self, config: GenerateConfig = GenerateConfig(), max_rounds: int = 0):
        self.config, self.max_rounds = config, max_rounds

    def candidates(self, ctx: Context) -> list[dict]:
        annotations = ctx.run.table("annotations").read().to_pylist()
        pairs = assign_nodes(annotations, load_taxonomy(self.config.taxonomy), self.config.max_nodes_per_clip,
                             grounded_only=self.config.writer == "template")
        items = [{"clip_id": a["clip_id"], "leaf": leaf, "annotation": a, "round": 0} for a, leaf in pairs]
        return items + closed_loop_items(ctx.run, annotations, self.config, self.max_rounds)

    def key(self, item: dict) -> str:
        return item_id(item)

    def done(self, ctx: Context) -> set[str]:
        questions = ctx.run.table("questions").read(columns=["clip_id", "node_path", "round"]).to_pylist()
        done = {f"{q['clip_id']}|{q['node_path']}|r{q['round']}" for q in questions}
        return done | set(ctx.run.rejects(self.name)["item_id"].to_pylist())

    def process(self, ctx: Context, pending: list[dict], stats: StageStats, out: BufferedWriter) -> None:
        config = self.config
        with ExitStack() as stack:
            endpoint = role_endpoint(stack, config.writer, config.endpoint) if config.writer != "template" else None
            cache_path = ctx.run.llm_cache
            writer = make_writer(config, endpoint, cache_path)
            for result in LocalRunner().run(writer, pending, stats, on_progress=ctx.on_progress):
                out.add(result)
            if isinstance(writer, LLMWriter):
                stats.extra["llm"] = {**writer.client.usage.as_dict(), "model": endpoint.model}


def run_generate(run: RunFolder, config: GenerateConfig = GenerateConfig(),
                 on_progress: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None, max_rounds: int = 0,
                 shard: Shard | None = None) -> StageStats:
    return run_step(Generate(config, max_rounds), Context(run, None, shard, on_progress, on_total))
