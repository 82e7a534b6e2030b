"""Planted defective items each get the right reject reason; the answer-position balance keeps keys right."""

import hashlib
import random
from collections import Counter

import pyarrow as pa
from scipy.stats import chisquare

from dataflux.stages.filter import FilterConfig, decide
from verifiers.filters import Balancer, Deduplicator, letter_balance, relabel
from dataflux.mcq import extract_letter

GENDER = "speaker_traits > gender > perceived_gender > speaker_gender"
OPTIONS = ["A man's voice", "A woman's voice", "A young child's voice", "No voice can be heard"]


def question(qid, text="What kind of voice do you hear?", options=OPTIONS, clip="c1", node=GENDER):
    return {"question_id": qid, "clip_id": clip, "node_path": node, "round": 0, "question": text, "options": options,
            "writer_backend": "template", "writer_model": None, "prompt_version": "t"}


def verdict(qid, a="B", b="B", reasoning=None, winner="TIE", consistency="STRONG_MATCH", clip="c1"):
    reasoning = reasoning if reasoning is not None else f"The voice is around 210 Hz, a woman's voice.\nAnswer: {a}"
    answers = [{"answerer": "x", "backend": "analyzer", "model": "m", "letter": a, "reasoning": reasoning},
               {"answerer": "y", "backend": "analyzer", "model": "m", "letter": b, "reasoning": reasoning}]
    return {"question_id": qid, "clip_id": clip, "round": 0, "answers": answers, "consensus": a == b,
            "consistency_with_caption": consistency, "winner": winner, "final_action": "KEEP_USING_WINNER",
            "judge_reasoning": "j", "judge_backend": "rules", "judge_model": None, "judge_prompt_version": "r"}


def run_filter_rows(pairs, config=FilterConfig()):
    dedup, per_node, balancer = Deduplicator(config.near_duplicate), Counter(), Balancer()
    out = []
    for q, v in pairs:
        row, why = decide(v, q, config, dedup, per_node, balancer, {})
        out.append(why[0] if why else row)
    return out


def test_planted_defects_get_their_reasons():
    planted = [
        (question("ok"), verdict("ok")),
        (question("same_options", options=["Loud", "loud", "Quiet", "Soft"]), verdict("same_options")),
        (question("leaky", text="What does the caption say about the voice?"), verdict("leaky")),
        (question("leaky_reasoning"), verdict("leaky_reasoning", reasoning="The description says a woman.\nAnswer: B")),
        (question("mismatch"), verdict("mismatch", reasoning="It is a man's voice.\nAnswer: A")),
        (question("no_letter"), verdict("no_letter", a=None, b=None, winner="MODEL_A", consistency="WEAK_MATCH")),
        (question("exact_dup"), verdict("exact_dup")),
        (question("near_dup", text="What kind of voice do you hear ?!"), verdict("near_dup")),
        (question("split", clip="c2"), verdict("split", a="B", b="C", winner="MODEL_A", consistency="WEAK_MATCH",
                                               clip="c2")),
        (question("conflict", clip="c3"), verdict("conflict", winner="NONE", consistency="CONFLICT", clip="c3")),
    ]
    got = run_filter_rows(planted)
    assert isinstance(got[0], dict)
    assert got[1:] == ["malformed_question", "leakage", "leakage", "reasoning_mismatch", "no_target", "duplicate",
                       "duplicate", "ambiguous", "conflict"]


def test_node_cap():
    pairs = [(question(f"q{i}", clip=f"c{i}"), verdict(f"q{i}", clip=f"c{i}")) for i in range(5)]
    got = run_filter_rows(pairs, FilterConfig(max_per_node=3))
    assert [g if isinstance(g, str) else "kept" for g in got] == ["kept"] * 3 + ["node_cap"] * 2


def test_a_distinct_question_on_the_same_clip_is_not_a_duplicate():
    dedup = Deduplicator(0.9)
    assert dedup.add("c", "How fast does the person speak?", OPTIONS) is None
    assert dedup.add("c", "How loud is this recording?", OPTIONS) is None
    assert dedup.add("other", "How fast does the person speak?", OPTIONS) is None


def test_balance_spreads_a_skewed_key_evenly_and_keeps_it_right():
    balancer, rng = Balancer(), random.Random(0)
    placed = []
    for i in range(400):
        options = [f"option {i}-{j}" for j in range(4)]
        letter = "A" if rng.random() < 0.9 else "B"  # a writer that nearly always puts the key first
        new_options, new_letter, mapping = balancer.place(hashlib.sha1(str(i).encode()).hexdigest(), options, letter)
        assert new_options[ord(new_letter) - 65] == options[ord(letter) - 65]
        assert sorted(new_options) == sorted(options) and mapping[letter] == new_letter
        placed.append(new_letter)
    assert chisquare([placed.count(x) for x in "ABCD"]).pvalue > 0.5
    assert letter_balance(Counter(placed))["balanced"]
    assert not letter_balance(Counter({"A": 90, "B": 10}))["balanced"]


def test_relabel_rewrites_letter_references_but_not_the_article():
    mapping = {"A": "C", "B": "A", "C": "B", "D": "D"}
    text = "A man's voice is option A, not (B).\nAnswer: A"
    out = relabel(text, mapping)
    assert out == "A man's voice is option C, not (A).\nAnswer: C"
    assert extract_letter(out)[0] == "C"


def test_filtering_in_groups_of_clips_decides_as_one_group(tmp_path):
    """Above `group_rows` verdicts the filter reads and decides a group of clips at a time; a clip's items
    stay in one group, so duplicates are still caught, and every verdict ends kept or rejected once."""
    from dataflux.stages.filter import Filter, clip_groups
    from dataflux.step import Context, run_step
    from storage.run_folder import RunFolder

    pairs = []
    for c in range(12):
        clip = f"clip{c:02d}"
        pairs += [(question(f"{clip}_a", clip=clip), verdict(f"{clip}_a", clip=clip)),
                  (question(f"{clip}_b", clip=clip), verdict(f"{clip}_b", clip=clip)),  # an exact duplicate
                  (question(f"{clip}_c", clip=clip, text="Who is speaking in this clip?"),
                   verdict(f"{clip}_c", clip=clip, a="A", b="C", winner="NONE", consistency="CONFLICT"))]
    kept = {}
    for group_rows in (1000, 7):
        run = RunFolder(tmp_path / f"run{group_rows}")
        run.write("questions", [{**q, "producer": "test"} for q, _ in pairs])
        run.write("verdicts", [{**v, "node_path": GENDER, "producer": "test"} for _, v in pairs])
        step = Filter()
        step.group_rows = group_rows
        stats = run_step(step, Context(run))
        assert stats.rows_in == 36
        kept[group_rows] = sorted(run.table("kept").read(columns=["question_id"])["question_id"].to_pylist())
        reasons = Counter(run.rejects("filter")["reason_code"].to_pylist())
        assert len(kept[group_rows]) == 12 and reasons == {"duplicate": 12, "conflict": 12}
    assert kept[7] == kept[1000] == [f"clip{c:02d}_a" for c in range(12)]
    items = pa.table({"clip_id": [p[0]["clip_id"] for p in pairs], "question_id": [p[0]["question_id"] for p in pairs]})
    groups = clip_groups(items, 7)
    assert len(groups) == 6 and sum(g.num_rows for g in groups) == 36
    assert all(set(g["clip_id"].to_pylist()).isdisjoint(h["clip_id"].to_pylist())
               for i, g in enumerate(groups) for h in groups[i + 1:])
