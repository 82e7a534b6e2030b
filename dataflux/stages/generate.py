"""Generate: annotations -> `questions`, one taxonomy node at a time per clip.

An input item is a (clip, taxonomy node, round) triple; it ends as one or more questions or exactly
one reject (`node_mismatch`, `invalid_output`, `malformed_question`), under item id
`clip_id|node_path|rROUND`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from dataflux.generate.assign import assign_nodes
from dataflux.generate.writers import LLMWriter, TemplateWriter, item_id
from dataflux.llm.client import Endpoint
from dataflux.llm.server import MODEL_ALIAS, LocalLLMServer
from dataflux.runners.base import StageStats
from dataflux.shards import Shard, in_shard
from dataflux.runners.local import LocalRunner
from dataflux.stage import Resources
from dataflux.taxonomy import load_taxonomy
from storage.run_folder import RunFolder
from storage.writer import BufferedWriter

WRITERS = ("template", "local", "openai")


@dataclass(frozen=True)
class GenerateConfig:
    writer: str = "template"  # template | local (embedded llama.cpp server) | openai (any endpoint)
    questions_per_node: int = 5
    max_nodes_per_clip: int = 3
    taxonomy: str | None = None  # a YAML file; the packaged taxonomy by default
    batch_size: int = 16
    # openai: {base_url, model, api_key_env, flavor, concurrency, rpm, tpm, ...}; local: optional overrides
    endpoint: dict = field(default_factory=dict)


def make_writer(config: GenerateConfig, endpoint: Endpoint | None, cache_path: str | None):
    resources = Resources(num_cpus=0.1, batch_size=config.batch_size)
    if config.writer == "template":
        return TemplateWriter(resources)
    return LLMWriter(endpoint, cache_path, config.writer, config.questions_per_node, resources=resources)


def closed_loop_items(run: RunFolder, annotations: list[dict], config: GenerateConfig, max_rounds: int) -> list[dict]:
    """Rounds 1..max_rounds: the (clip, node) pairs whose questions were rejected for fixable reasons."""
    from dataflux.stages.filter import retry_items

    if max_rounds <= 0:
        return []
    leaves = {leaf.node_path: leaf for leaf in load_taxonomy(config.taxonomy)}
    by_clip = {a["clip_id"]: a for a in annotations}
    return [{"clip_id": r["clip_id"], "leaf": leaves[r["node_path"]], "annotation": by_clip[r["clip_id"]],
             "round": r["round"], "n": min(r["n"], config.questions_per_node), "feedback": r["feedback"]}
            for r in retry_items(run, max_rounds) if r["node_path"] in leaves and r["clip_id"] in by_clip]


def run_generate(run: RunFolder, config: GenerateConfig = GenerateConfig(),
                 on_progress: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None, max_rounds: int = 0,
                 shard: Shard | None = None) -> StageStats:
    """Write questions for every (clip, node, round) not yet accounted for; rounds after the first
    come from the closed loop (fixable rejects, up to `max_rounds`).

    The writer runs in this process whatever the pipeline's runner: it is I/O-bound, and its
    concurrency comes from asynchronous requests bounded per endpoint, not from workers.
    """
    if config.writer not in WRITERS:
        raise ValueError(f"unknown question writer {config.writer!r}: choose {', '.join(WRITERS)}")
    annotations = run.table("annotations").read().to_pylist()
    pairs = assign_nodes(annotations, load_taxonomy(config.taxonomy), config.max_nodes_per_clip,
                         grounded_only=config.writer == "template")
    items = [{"clip_id": a["clip_id"], "leaf": leaf, "annotation": a, "round": 0} for a, leaf in pairs]
    items += closed_loop_items(run, annotations, config, max_rounds)
    questions = run.table("questions").read(columns=["clip_id", "node_path", "round"]).to_pylist()
    done = {f"{q['clip_id']}|{q['node_path']}|r{q['round']}" for q in questions}
    done |= set(run.rejects("generate")["item_id"].to_pylist())
    items = [i for i in items if in_shard(i["clip_id"], shard)]
    pending = [i for i in items if item_id(i) not in done]
    stats = StageStats("generate", skipped=len(items) - len(pending))
    if on_total:
        on_total(len(pending))
    if not pending:
        return stats
    with ExitStack() as stack:
        endpoint = None
        if config.writer == "local" and not config.endpoint.get("base_url"):
            server = stack.enter_context(LocalLLMServer())  # started for this stage, stopped after it
            endpoint = Endpoint(**{"base_url": server.base_url, "model": MODEL_ALIAS, "flavor": "llama.cpp",
                                   "concurrency": 2, **config.endpoint})
        elif config.writer in ("local", "openai"):
            endpoint = Endpoint(**config.endpoint)
        cache_path = str(run.local_path / "llm_cache.sqlite") if run.local_path else None
        writer = make_writer(config, endpoint, cache_path)
        with BufferedWriter(run, "questions", {"stage": "generate"}, max_rows=256) as out:
            for result in LocalRunner().run(writer, pending, stats, on_progress=on_progress):
                out.add(result)
        if isinstance(writer, LLMWriter):
            stats.extra["llm"] = {**writer.client.usage.as_dict(), "model": endpoint.model}
    return stats
