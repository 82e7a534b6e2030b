"""The closed loop's bookkeeping: which (clip, node) pairs go back to the question writer.

Fixable rejects (a filter decision or a writer's unusable output, `verifiers.policy.FIXABLE`) in round r
become work for round r+1, with every earlier round's reasons as feedback, until `max_rounds`.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from storage.run_folder import RunFolder
from verifiers.policy import FIXABLE


def retry_items(run: RunFolder, max_rounds: int) -> list[dict]:
    """Work for round r+1 on every (clip, node) whose latest round r < max_rounds lost questions to
    fixable rejects: as many questions as round r lost, with every earlier round's reasons as feedback
    (so each round's prompt differs from the last, and the writer sees what not to repeat)."""
    rejects = run.table("rejects").read(columns=["stage", "reason_code", "item_id", "detail"])
    fixable = rejects.filter(pc.and_(pc.is_in(rejects["stage"], value_set=pa.array(["generate", "filter"])),
                                     pc.is_in(rejects["reason_code"], value_set=pa.array(FIXABLE))))
    if not fixable.num_rows:
        return []
    questions = _questions(run, fixable.filter(pc.equal(fixable["stage"], "filter"))["item_id"])
    fixable = fixable.sort_by([("item_id", "ascending"), ("stage", "ascending")]).to_pylist()
    lost: dict[tuple[str, str], dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    per_question = {r["item_id"].split("#")[0] for r in fixable if r["stage"] == "generate" and "#" in r["item_id"]}
    for r in fixable:
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


def _questions(run: RunFolder, question_ids: pa.ChunkedArray) -> dict[str, dict]:
    """The rejected questions' clip, node, round and text, by question id (only those are read)."""
    if not len(question_ids):
        return {}
    columns = ["question_id", "clip_id", "node_path", "round", "question"]
    chunks = run.table("questions").scan(columns, ("question_id", set(question_ids.to_pylist())))
    return {q["question_id"]: q for chunk in chunks for q in chunk.to_pylist()}
