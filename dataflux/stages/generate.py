"""Generate: annotations -> `questions`, one taxonomy node at a time per clip.

An input item is a (clip, taxonomy node, round) triple; it ends as one or more questions or exactly
one reject (`node_mismatch`, `invalid_output`, `malformed_question`), under item id
`clip_id|node_path|rROUND`.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Callable, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dataflux.generate.assign import assign_nodes, grounding_columns
from dataflux.generate.writers import MAX_QUESTIONS_PER_NODE, LLMWriter, TemplateWriter
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


ITEMS = pa.schema([("clip_id", pa.string()), ("node_path", pa.string()), ("round", pa.int64()),
                   ("n", pa.int64()), ("feedback", pa.string())])


def closed_loop_items(run: RunFolder, clip_ids: pa.Array, leaves: dict, config: GenerateConfig,
                      max_rounds: int) -> pa.Table:
    """Rounds 1..max_rounds: the (clip, node) pairs whose questions were rejected for fixable reasons."""
    items = pa.Table.from_pylist(retry_items(run, max_rounds) if max_rounds > 0 else [], schema=ITEMS)
    items = items.filter(pc.and_(pc.is_in(items["node_path"], value_set=pa.array(list(leaves), pa.string())),
                                 pc.is_in(items["clip_id"], value_set=clip_ids)))
    return items.set_column(3, "n", pc.min_element_wise(items["n"], config.questions_per_node))


class Generate(Step):
    """Write questions for every (clip, node, round) not yet accounted for; rounds after the first come
    from the closed loop (fixable rejects, up to `max_rounds`).

    The writer runs in this process whatever the pipeline's runner: it is I/O-bound, and its
    concurrency comes from asynchronous requests bounded per endpoint, not from workers.
    """

    name, reads, writes = "generate", ("annotations", "rejects", "kept"), "questions"
    chunk_clips = 1024  # clips whose annotations (with their items) are Python dicts at once

    def __init__(self, config: GenerateConfig = GenerateConfig(), max_rounds: int = 0):
        self.config, self.max_rounds = config, max_rounds

    def candidates(self, ctx: Context) -> pa.Table:
        leaves = load_taxonomy(self.config.taxonomy)
        notes = ctx.run.table("annotations").read(columns=["clip_id", *grounding_columns(leaves)])
        pairs = assign_nodes(notes, leaves, self.config.max_nodes_per_clip,
                             grounded_only=self.config.writer == "template")
        n = pairs.num_rows
        first = pairs.append_column("round", pa.array([0] * n, pa.int64())).append_column(
            "n", pa.nulls(n, pa.int64())).append_column("feedback", pa.nulls(n, pa.string()))
        loop = closed_loop_items(ctx.run, notes["clip_id"], {leaf.node_path: leaf for leaf in leaves}, self.config,
                                 self.max_rounds)
        return pa.concat_tables([first, loop])

    def keys(self, items: pa.Table) -> pa.Array:
        return pc.binary_join_element_wise(items["clip_id"], items["node_path"],
                                           pc.binary_join_element_wise("r", pc.cast(items["round"], pa.string()), ""),
                                           "|")

    def done(self, ctx: Context) -> pa.ChunkedArray:
        questions = ctx.run.table("questions").read(columns=["clip_id", "node_path", "round"])
        rejects = ctx.run.rejects(self.name, ["item_id"])["item_id"]
        return pa.chunked_array([*self.keys(questions).chunks, *rejects.chunks], pa.string())

    def process(self, ctx: Context, pending: pa.Table, stats: StageStats, out: BufferedWriter) -> None:
        config = self.config
        leaves = {leaf.node_path: leaf for leaf in load_taxonomy(config.taxonomy)}
        clip_ids = set(pending["clip_id"].to_pylist())
        with ExitStack() as stack:
            endpoint = role_endpoint(stack, config.writer, config.endpoint) if config.writer != "template" else None
            writer = make_writer(config, endpoint, ctx.run.llm_cache)
            # A chunk of clips' annotations at a time, with their items: never the whole table as dicts.
            for notes in ctx.run.table("annotations").scan(None, ("clip_id", clip_ids), self.chunk_clips):
                by_clip = {a["clip_id"]: a for a in notes.to_pylist()}
                here = pending.filter(pc.is_in(pending["clip_id"], value_set=notes["clip_id"]))
                items = [{**item, "leaf": leaves[item["node_path"]], "annotation": by_clip[item["clip_id"]]}
                         for item in here.to_pylist()]
                for result in LocalRunner().run(writer, items, stats, on_progress=ctx.on_progress):
                    out.add(result)
            if isinstance(writer, LLMWriter):
                stats.extra["llm"] = {**writer.client.usage.as_dict(), "model": endpoint.model}


def run_generate(run: RunFolder, config: GenerateConfig = GenerateConfig(),
                 on_progress: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None, max_rounds: int = 0,
                 shard: Shard | None = None) -> StageStats:
    return run_step(Generate(config, max_rounds), Context(run, None, shard, on_progress, on_total))
