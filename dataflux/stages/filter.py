"""Filter: verdicts -> `kept` (training examples) or rejects with reasons.

Per item, in (round, clip, question) order: the keep/discard policy on the verdict, then the
structural checks on the winner's target; then per clip near-duplicate removal, a cap per taxonomy
node, and the answer-position balance. Decisions already committed (an earlier run into the same
folder) seed the duplicate, cap and balance state, so a re-run, or a run over new questions, decides
the same way; the kept rows are committed at once.

The closed loop: `retry_items` turns fixable rejects back into question-writer work for the next
round, with the reason as feedback, until `max_rounds`.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable

from dataflux.runners.base import StageStats
from dataflux.stage import Result
from storage.run_folder import RunFolder
from storage.writer import BufferedWriter
from verifiers.filters import Balancer, Deduplicator, letter_balance, relabel, structural, target_text
from verifiers.parse import LETTERS, split_final_answer
from verifiers.policy import FIXABLE, Policy, winner_index

PRODUCER = "filter@1"


@dataclass(frozen=True)
class FilterConfig:
    policy: Policy = field(default_factory=Policy)
    near_duplicate: float = 0.9  # difflib ratio of normalised question texts, per clip
    max_per_node: int = 0  # kept items per taxonomy node; 0: no cap
    balance: bool = True
    max_rounds: int = 2  # closed-loop rounds after the first (round 0)


def reject(item_id: str, reason: str, detail: str, clip_id: str) -> dict:
    return {"item_id": item_id, "stage": "filter", "reason_code": reason, "detail": detail, "source": clip_id,
            "producer": PRODUCER}


def run_filter(run: RunFolder, config: FilterConfig = FilterConfig(), lineage_base: dict | None = None,
               on_progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> StageStats:
    start = time.perf_counter()
    stats = _filter(run, config, lineage_base, on_progress, on_total)
    stats.seconds = time.perf_counter() - start
    return stats


def _filter(run: RunFolder, config: FilterConfig, lineage_base: dict | None,
            on_progress: Callable[[int], None] | None, on_total: Callable[[int], None] | None) -> StageStats:
    verdicts = run.table("verdicts").read().to_pylist()
    kept = run.table("kept").read().to_pylist()
    done = {k["question_id"] for k in kept} | set(run.rejects("filter")["item_id"].to_pylist())
    pending = sorted((v for v in verdicts if v["question_id"] not in done),
                     key=lambda v: (v["round"], v["clip_id"], v["question_id"]))
    stats = StageStats("filter", skipped=len(verdicts) - len(pending))
    if on_total:
        on_total(len(pending))
    if not pending:
        return stats
    wanted = {v["question_id"] for v in pending}
    questions = {q["question_id"]: q for q in run.table("questions").read().to_pylist() if q["question_id"] in wanted}
    dedup = Deduplicator(config.near_duplicate)
    per_node: Counter = Counter()
    for k in kept:
        dedup.add(k["clip_id"], k["question"], k["options"])
        per_node[k["node_path"]] += 1
    balancer = Balancer(Counter(k["answer"] for k in kept))
    result = Result()
    for v in pending:
        q = questions[v["question_id"]]
        row, why = decide(v, q, config, dedup, per_node, balancer, lineage_base or {})
        if why:
            result.rejects.append(reject(v["question_id"], why[0], why[1], v["clip_id"]))
        else:
            result.rows.append(row)
    stats.add(len(pending), result)
    with BufferedWriter(run, "kept", {"stage": "filter"}, max_rows=1 << 30, max_seconds=1e9) as out:
        out.add(result)  # one commit for the kept rows: the balance state is all or nothing
    if on_progress:
        on_progress(len(pending))
    stats.extra["answer_balance"] = letter_balance(balancer.counts)
    return stats


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
    if config.max_per_node and per_node[q["node_path"]] >= config.max_per_node:
        return None, ("node_cap", f"{q['node_path']} already has {config.max_per_node} kept items")
    duplicate = dedup.add(q["clip_id"], q["question"], q["options"])
    if duplicate:
        return None, ("duplicate", duplicate)
    per_node[q["node_path"]] += 1
    options = list(q["options"])
    if config.balance:
        options, new_letter, mapping = balancer.place(q["question_id"], options, letter)
        reasoning, letter = relabel(reasoning, mapping), new_letter
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
            "answer_text": options[LETTERS.index(letter)], "reasoning": body, "target": target_text(body, letter),
            "winner": v["winner"], "consistency_with_caption": v["consistency_with_caption"], "hard": hard,
            "lineage": json.dumps(lineage, sort_keys=True), "producer": PRODUCER,
            "backend": chosen["backend"], "model_id": chosen["model"]}, None


def retry_items(run: RunFolder, max_rounds: int) -> list[dict]:
    """Work for round r+1 on every (clip, node) whose latest round r < max_rounds lost questions to
    fixable rejects: as many questions as round r lost, with every earlier round's reasons as feedback
    (so each round's prompt differs from the last, and the writer sees what not to repeat)."""
    rejects = run.table("rejects").read().to_pylist() if run.table("rejects").exists() else []
    fixable = [r for r in rejects if r["stage"] in ("generate", "filter") and r["reason_code"] in FIXABLE]
    if not fixable:
        return []
    questions = {q["question_id"]: q for q in run.table("questions").read(
        columns=["question_id", "clip_id", "node_path", "round", "question"]).to_pylist()}
    lost: dict[tuple[str, str], dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    per_question = {r["item_id"].split("#")[0] for r in fixable if r["stage"] == "generate" and "#" in r["item_id"]}
    for r in sorted(fixable, key=lambda r: r["item_id"]):
        if r["stage"] == "filter":
            q = questions.get(r["item_id"])
            if q is None:
                continue
            clip, node, round_ = q["clip_id"], q["node_path"], q["round"]
            note = f"{r['reason_code']}: \"{q['question'][:200]}\" ({r['detail'][:200]})"
        else:  # generate rejects: `clip|node|rN#i` per question, `clip|node|rN` when none was usable
            clip, node, rest = r["item_id"].split("|", 2)
            round_ = int(rest[1:].split("#")[0])
            if "#" not in rest and r["item_id"] in per_question:
                continue  # the item-level "no usable question": its questions' own reasons say more
            note = f"{r['reason_code']}: {r['detail'][:300]}"
        lost[(clip, node)][round_].append(note)
    items = []
    for (clip, node), rounds in sorted(lost.items()):
        last = max(rounds)
        if last >= max_rounds:
            continue
        feedback = " | ".join(f"round {n}: " + "; ".join(rounds[n]) for n in sorted(rounds))
        items.append({"clip_id": clip, "node_path": node, "round": last + 1, "n": len(rounds[last]),
                      "feedback": feedback[-2000:]})
    return items
