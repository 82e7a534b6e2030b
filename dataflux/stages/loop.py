"""The closed loop's bookkeeping: which (clip, node) pairs go back to the question writer.

Fixable rejects (a filter decision or a writer's unusable output, `verifiers.policy.FIXABLE`) in round r
become work for round r+1, with every earlier round's reasons as feedback, until `max_rounds`.
"""

from __future__ import annotations

from collections import defaultdict

from storage.run_folder import RunFolder
from verifiers.policy import FIXABLE


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
