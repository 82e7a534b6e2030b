"""Cross-verify: questions -> `verdicts`. Two (or more) answerers answer each question from the
audio, then a judge adjudicates. An item is a question; it ends as one verdict row or one reject
(`answer_failed`, `judge_failed`).

The chain runs on the pipeline's runner (Ray actor pools for the measuring answerers); the audio of a
clip travels with each of its questions, sorted together so an answerer measures a clip once.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable, Iterator

from dataflux.annotate.tags import TagThresholds
from dataflux.llm.client import Endpoint
from dataflux.llm.server import MODEL_ALIAS, LocalLLMServer
from dataflux.runners.base import Runner, StageStats
from dataflux.shards import Shard, in_shard
from dataflux.stage import Resources, Result, Stage
from storage.run_folder import RunFolder
from verifiers.answerers import answers_of
from storage.writer import BufferedWriter

PRODUCER = "verify@1"
DEFAULT_ANSWERERS = ({"name": "listener_a", "backend": "analyzer", "stack": "whisper"},
                     {"name": "listener_b", "backend": "analyzer", "stack": "signal"})
ANSWERER_BACKENDS = ("analyzer", "openai", "eureka")
JUDGE_BACKENDS = ("rules", "local", "openai")


@dataclass(frozen=True)
class VerifyConfig:
    # each: {name, backend: analyzer|openai|eureka, stack (analyzer), endpoint (openai), checkpoint (eureka)}
    answerers: tuple = DEFAULT_ANSWERERS
    judge: dict = field(default_factory=lambda: {"backend": "rules"})  # + endpoint, rules_dir for LLM judges
    batch_size: int = 16
    threads: int = 0
    num_cpus: float = 0.5  # per measuring answerer actor
    chunk_clips: int = 1024  # clips whose audio (with all their questions) is in memory at once


def _local_endpoint(stack: ExitStack, overrides: dict) -> Endpoint:
    if overrides.get("base_url"):
        return Endpoint(**overrides)
    server = stack.enter_context(LocalLLMServer())
    return Endpoint(**{"base_url": server.base_url, "model": MODEL_ALIAS, "flavor": "llama.cpp",
                       "concurrency": 2, **overrides})


def build_chain(config: VerifyConfig, thresholds: TagThresholds, cache_path: str | None,
                stack: ExitStack) -> list[Stage]:
    from verifiers.answerers import AnalyzerAnswerer, OpenAIAnswerer
    from verifiers.judges import LLMJudge, RulesJudge

    if len(config.answerers) < 2:
        raise ValueError("verify needs at least two answerers (`verify.answerers`)")
    names = [a.get("name") for a in config.answerers]
    if None in names or len(set(names)) != len(names):
        raise ValueError("every answerer needs a distinct `name`")
    chain: list[Stage] = []
    for spec in config.answerers:
        backend = spec.get("backend")
        if backend == "analyzer":
            res = Resources(num_cpus=config.num_cpus, batch_size=config.batch_size)
            chain.append(AnalyzerAnswerer(spec["name"], spec.get("stack", "whisper"), thresholds, config.threads, res))
        elif backend == "openai":
            chain.append(OpenAIAnswerer(spec["name"], Endpoint(**spec["endpoint"]), cache_path,
                                        resources=Resources(num_cpus=0.1, batch_size=config.batch_size)))
        elif backend == "eureka":
            from model.answerer import EurekaAnswerer  # the training stage's checkpoints

            chain.append(EurekaAnswerer(spec["name"], spec["checkpoint"],
                                        resources=Resources(num_cpus=1.0, batch_size=config.batch_size)))
        else:
            raise ValueError(f"unknown answerer backend {backend!r}: choose {', '.join(ANSWERER_BACKENDS)}")
    judge = config.judge.get("backend", "rules")
    if judge == "rules":
        chain.append(RulesJudge())
    elif judge in ("local", "openai"):
        overrides = dict(config.judge.get("endpoint") or {})
        endpoint = _local_endpoint(stack, overrides) if judge == "local" else Endpoint(**overrides)
        chain.append(LLMJudge(endpoint, cache_path, judge, config.judge.get("rules_dir")))
    else:
        raise ValueError(f"unknown judge backend {judge!r}: choose {', '.join(JUDGE_BACKENDS)}")
    return chain


def verdict_row(item: dict) -> dict:
    v = json.loads(item["verdict"])
    return {"question_id": item["question_id"], "clip_id": item["clip_id"], "node_path": item["node_path"],
            "round": item["round"], "answers": answers_of(item), "consensus": v["consensus"],
            "consistency_with_caption": v["consistency_with_caption"], "winner": v["winner"],
            "judge_reasoning": v["reasoning"], "final_action": v["final_action"],
            "judge_backend": item["judge_backend"], "judge_model": item["judge_model"],
            "judge_prompt_version": item["judge_prompt_version"], "judge_raw": item["judge_raw"],
            "producer": PRODUCER, "backend": item["judge_backend"], "model_id": item["judge_model"]}


def pending_questions(run: RunFolder, shard: Shard | None = None) -> tuple[list[dict], int]:
    """Questions (in `shard`) without a verdict or a verify reject; and how many are done already."""
    questions = [q for q in run.table("questions").read().to_pylist() if in_shard(q["clip_id"], shard)]
    done = set(run.table("verdicts").read(columns=["question_id"])["question_id"].to_pylist())
    done |= set(run.rejects("verify")["item_id"].to_pylist())
    pending = [q for q in questions if q["question_id"] not in done]
    return pending, len(questions) - len(pending)


def items_with_audio(run: RunFolder, pending: list[dict], chunk_clips: int) -> Iterator[list[dict]]:
    """The pending questions as items, with their clip's audio and annotation, a bounded number of
    clips' audio at a time; a clip's questions are together, so an answerer measures a clip once."""
    by_clip: dict[str, list[dict]] = {}
    for q in pending:
        by_clip.setdefault(q["clip_id"], []).append(q)
    notes = {a["clip_id"]: a for a in run.table("annotations").read().to_pylist() if a["clip_id"] in by_clip}
    missing = set(by_clip)
    for chunk in run.table("clips").scan(["clip_id", "audio"], ("clip_id", set(by_clip)), chunk_clips):
        missing -= set(chunk["clip_id"].to_pylist())
        items = [{**q, "audio": clip["audio"], "answers": "[]",
                  "annotation": json.dumps(notes.get(clip["clip_id"]) or {}, default=str)}
                 for clip in chunk.to_pylist() for q in by_clip[clip["clip_id"]]]
        items.sort(key=lambda i: (i["clip_id"], i["question_id"]))
        yield items
    if missing:
        raise ValueError(f"{len(missing)} clips with questions are not in the clips table, e.g. {min(missing)}")


def run_verify(run: RunFolder, runner: Runner, config: VerifyConfig = VerifyConfig(),
               thresholds: TagThresholds = TagThresholds(),
               on_progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None, shard: Shard | None = None) -> StageStats:
    pending, skipped = pending_questions(run, shard)
    stats = StageStats("verify", skipped=skipped)
    if on_total:
        on_total(len(pending))
    if not pending:
        return stats
    cache_path = str(run.local_path / "llm_cache.sqlite") if run.local_path else None

    def post(result: Result) -> Result:
        rejects = [{**r, "stage": "verify"} for r in result.rejects]
        return Result([verdict_row(item) for item in result.rows], rejects)

    with ExitStack() as stack:
        chain = build_chain(config, thresholds, cache_path, stack)
        with BufferedWriter(run, "verdicts", {"stage": "verify"}, max_rows=256) as out:
            for items in items_with_audio(run, pending, config.chunk_clips):
                for result in runner.run(chain, items, stats, post=post, on_progress=on_progress):
                    out.add(result)
    return stats
