"""Filter: verdicts -> `kept` (training examples) or rejects with reasons.

Per item, in (round, clip, question) order: the keep/discard policy on the verdict, then the
structural checks on the winner's target; then per clip near-duplicate removal, a cap per taxonomy
node, and the answer-position balance. Decisions already committed (an earlier run into the same
folder) seed the duplicate, cap and balance state, so a re-run, or a run over new questions, decides
the same way; the kept rows are committed at once.

Fixable rejects go back to the question writer: see `dataflux.stages.loop`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Callable

from dataflux.runners.base import StageStats
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

    def candidates(self, ctx: Context) -> list[dict]:
        verdicts = ctx.run.table("verdicts").read().to_pylist()
        return sorted(verdicts, key=lambda v: (v["round"], v["clip_id"], v["question_id"]))

    def process(self, ctx: Context, pending: list[dict], stats: StageStats, out: BufferedWriter) -> None:
        wanted = {v["question_id"] for v in pending}
        questions = {q["question_id"]: q for q in ctx.run.table("questions").read().to_pylist()
                     if q["question_id"] in wanted}
        kept = ctx.run.table("kept").read().to_pylist()
        dedup = Deduplicator(self.config.near_duplicate)
        per_node: Counter = Counter()
        for k in kept:
            dedup.add(k["clip_id"], k["question"], k["options"])
            per_node[k["node_path"]] += 1
        balancer = Balancer(Counter(k["answer"] for k in kept))
        result = Result()
        for v in pending:
            row, why = decide(v, questions[v["question_id"]], self.config, dedup, per_node, balancer,
                              self.lineage_base)
            if why:
                result.rejects.append(reject(v["question_id"], why[0], why[1], v["clip_id"]))
            else:
                result.rows.append(row)
        stats.add(len(pending), result)
        out.add(result)
        ctx.progress(len(pending))
        stats.extra["answer_balance"] = letter_balance(balancer.counts)


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
