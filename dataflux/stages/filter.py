"""Filter: verdicts -> `kept` (training examples) or rejects with reasons.

Per item, in (round, clip, question) order within a group of clips (one group up to `group_rows`
verdicts; above, groups by a stable hash of the clip, so only one group's rows are read at a time): the
keep/discard policy on the verdict, then the structural checks on the winner's target; then per clip
near-duplicate removal, a cap per taxonomy node, and the answer-position balance. Decisions already
committed (an earlier run into the same folder) seed the duplicate, cap and balance state, so a re-run,
or a run over new questions, decides the same way; the kept rows are committed at once.

Fixable rejects go back to the question writer: see `dataflux.stages.loop`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from dataflux.runners.base import StageStats
from dataflux.shards import shard_of
from dataflux.settings import Section
from dataflux.stage import Result
from dataflux.step import Context, Step, run_step
from storage.run_folder import RunFolder
from storage.writer import BufferedWriter
from verifiers.filters import Balancer, Deduplicator, letter_balance, relabel, structural, target_text
from dataflux.mcq import LETTERS, split_final_answer
from verifiers.policy import Policy, winner_index

PRODUCER = "filter@1"


class FilterConfig(Section):
    policy: Policy = Policy()
    near_duplicate: float = 0.9  # rapidfuzz ratio (/100) of normalised question texts, per clip
    max_per_node: int = 0  # kept items per taxonomy node; 0: no cap
    balance: bool = True
    max_rounds: int = 2  # closed-loop rounds after the first (round 0)


def reject(item_id: str, reason: str, detail: str, clip_id: str) -> dict:
    return {"item_id": item_id, "stage": "filter", "reason_code": reason, "detail": detail, "source": clip_id,
            "producer": PRODUCER}


class Filter(Step):
    """Keep or discard every verdict not decided yet; the kept rows of one run are one commit, since the
    balance state is all or nothing."""

    name, reads, writes, done_column = "filter", ("verdicts",), "kept", "question_id"
    commit_rows = 1 << 30

    def __init__(self, config: FilterConfig = FilterConfig(), lineage_base: dict | None = None):
        self.config, self.lineage_base = config, lineage_base or {}

    chunk_rows = 4096  # verdicts (with their questions) that are Python dicts at once
    group_rows = 65536  # verdicts (with their questions) read into Arrow at once, a whole number of clips

    def candidates(self, ctx: Context) -> pa.Table:
        return ctx.run.table("verdicts").read(columns=["question_id", "clip_id", "round"])

    def process(self, ctx: Context, pending: pa.Table, stats: StageStats, out: BufferedWriter) -> None:
        dedup, per_node, balancer = self._state(ctx, pc.unique(pending["clip_id"]))
        for group in clip_groups(pending, self.group_rows):
            # Within a group of clips (a clip's items always in one), in (round, clip, question) order.
            group = group.sort_by([("round", "ascending"), ("clip_id", "ascending"), ("question_id", "ascending")])
            ids = group["question_id"]
            verdicts = _Rows(ctx.run.table("verdicts").read(columns=VERDICT_COLUMNS, where=("question_id", ids)))
            questions = _Rows(ctx.run.table("questions").read(columns=QUESTION_COLUMNS, where=("question_id", ids)))
            for start in range(0, group.num_rows, self.chunk_rows):
                chunk = ids.slice(start, self.chunk_rows)
                result = Result()
                for v, q in zip(verdicts.take(chunk).to_pylist(), questions.take(chunk).to_pylist()):
                    row, why = decide(v, q, self.config, dedup, per_node, balancer, self.lineage_base)
                    if why:
                        result.rejects.append(reject(v["question_id"], why[0], why[1], v["clip_id"]))
                    else:
                        result.rows.append(row)
                stats.add(len(chunk), result)
                out.add(result)
                ctx.progress(len(chunk))
        stats.extra["answer_balance"] = letter_balance(balancer.counts)

    def _state(self, ctx: Context, clip_ids: pa.Array) -> tuple[Deduplicator, Counter, Balancer]:
        """The duplicate, cap and balance state of the decisions already committed: the kept questions of
        the clips at hand (duplicates are per clip), and the kept counts per node and per answer letter."""
        table = ctx.run.table("kept")
        dedup = Deduplicator(self.config.near_duplicate)
        for k in table.read(columns=["clip_id", "question", "options"], where=("clip_id", clip_ids)).to_pylist():
            dedup.add(k["clip_id"], k["question"], k["options"])
        kept = table.read(columns=["node_path", "answer"])
        return dedup, counts(kept["node_path"]), Balancer(counts(kept["answer"]))


VERDICT_COLUMNS = ["question_id", "clip_id", "answers", "consensus", "consistency_with_caption", "winner",
                   "final_action", "judge_reasoning", "judge_backend", "judge_model", "judge_prompt_version", "blind"]
QUESTION_COLUMNS = ["question_id", "clip_id", "node_path", "round", "question", "options", "writer_backend",
                    "writer_model", "prompt_version"]


class _Rows:
    """Rows looked up by question id, the table staying Arrow: `take(ids)` gives those rows' table."""

    def __init__(self, table: pa.Table):
        self.table = table

    def take(self, ids: pa.ChunkedArray) -> pa.Table:
        return self.table.take(pc.index_in(ids, value_set=self.table["question_id"]))


def clip_groups(items: pa.Table, rows: int) -> list[pa.Table]:
    """`items` split by a stable hash of their clip into groups of about `rows` items (one group when they
    are fewer): a clip's items are in one group, and the same clips go together on every run."""
    groups = -(-items.num_rows // rows)
    if groups <= 1:
        return [items]
    shard = pa.array([shard_of(c, groups) for c in items["clip_id"].to_pylist()], pa.int64())
    return [items.filter(pc.equal(shard, g)) for g in range(groups)]


def counts(column: pa.ChunkedArray) -> Counter:
    return Counter({c["values"]: c["counts"] for c in pc.value_counts(column).to_pylist()})


def run_filter(run: RunFolder, config: FilterConfig = FilterConfig(), lineage_base: dict | None = None,
               on_progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> StageStats:
    return run_step(Filter(config, lineage_base), Context(run, None, None, on_progress, on_total))


def decide(v: dict, q: dict, config: FilterConfig, dedup: Deduplicator, per_node: Counter, balancer: Balancer,
           lineage_base: dict) -> tuple[dict | None, tuple[str, str] | None]:
    answers = v["answers"]
    letters = [a["letter"] for a in answers]
    verdict = {k: v[k] for k in ("consensus", "consistency_with_caption", "winner", "final_action")}
    reason = config.policy.decide(verdict, letters)
    if reason:
        return None, (reason, v.get("judge_reasoning") or "")
    chosen = answers[winner_index(verdict)]
    letter, reasoning = chosen["letter"], chosen["reasoning"] or ""
    problem = structural(q["question"], q["options"], letter, reasoning)
    if problem:
        return None, problem
    why, answerable, weight = config.policy.text_only(v.get("blind"), LETTERS.index(letter))
    if why:
        return None, (why, f"the blind answerer picks the key without the audio: {v.get('blind')}")
    why, single = config.policy.sources(answers, q["node_path"], letter)
    if why:
        return None, (why, "one source: the only confirmation is the only competent answerer or measures like the "
                           "annotator")
    if config.max_per_node and per_node[q["node_path"]] >= config.max_per_node:
        return None, ("node_cap", f"{q['node_path']} already has {config.max_per_node} kept items")
    duplicate = dedup.add(q["clip_id"], q["question"], q["options"])
    if duplicate:
        return None, ("duplicate", duplicate)
    per_node[q["node_path"]] += 1
    options = list(q["options"])
    trace = chosen.get("trace")
    if config.balance:
        options, new_letter, mapping = balancer.place(q["question_id"], options, letter)
        reasoning, letter = relabel(reasoning, mapping), new_letter
        trace = relabel(trace, mapping) if trace else trace
    else:
        balancer.counts[letter] += 1
    body = split_final_answer(reasoning)
    hard = any(a["backend"] == "eureka" and a["letter"] != chosen["letter"] for a in answers)
    lineage = {**lineage_base, "writer": {"backend": q["writer_backend"], "model": q["writer_model"],
                                          "prompt_version": q["prompt_version"]},
               "answerers": [{k: a[k] for k in ("answerer", "backend", "model")} for a in answers],
               "judge": {"backend": v["judge_backend"], "model": v["judge_model"],
                         "prompt_version": v["judge_prompt_version"]}}
    return {"question_id": q["question_id"], "clip_id": q["clip_id"], "node_path": q["node_path"],
            "round": q["round"], "question": q["question"], "options": options, "answer": letter,
            "answer_text": options[LETTERS.index(letter)], "reasoning": body, "trace": trace,
            "target": target_text(body, letter),
            "winner": v["winner"], "consistency_with_caption": v["consistency_with_caption"], "hard": hard,
            "text_answerable": answerable, "weight": weight, "single_source": single,
            "lineage": json.dumps(lineage, sort_keys=True), "producer": PRODUCER,
            "backend": chosen["backend"], "model_id": chosen["model"]}, None
