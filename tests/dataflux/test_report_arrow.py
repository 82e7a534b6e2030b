"""The summary's figures and the closed loop's retry items, computed on Arrow tables, against a small run
folder counted by hand: nulls included (a verdict with one answer, a second answer without a letter,
annotations without measures or tags, a blind check with no key)."""

import json

import pytest

from dataflux.report import summarize
from dataflux.stages.loop import retry_items
from storage.run_folder import RunFolder
from storage.schemas import ANNOTATIONS, QUESTIONS, VERDICTS
from tests.storage.fill import NODES, rows

N1, N2 = NODES


def blank(schema) -> dict:
    return {f.name: None for f in schema}


def answer(answerer: str, backend: str, model: str | None, letter: str | None) -> dict:
    return {"answerer": answerer, "backend": backend, "model": model, "letter": letter, "reasoning": "r", "raw": "x",
            "parse": None, "trace": None}


def blind(*picks: int) -> str:
    return json.dumps({"backend": "rules", "model": None, "picks": list(picks)})


A, B = ("listener_a", "x", "m1"), ("listener_b", "y", None)
RULES = ("rules", None, "rules-v1")
# question_id: clip, node, round, writer, answer key
QUESTION = {"q1": ("c1", N1, 0, ("template", None, "v3"), "A"), "q2": ("c1", N1, 0, ("template", None, "v3"), None),
            "q3": ("c2", N2, 0, ("template", None, "v3"), None), "q4": ("c3", N2, 1, ("local", "m", "v1"), None),
            "q5": ("c3", N2, 1, ("template", None, "v3"), None)}
# question_id: answers, winner, consistency, judge, blind picks
VERDICT = {
    "q1": ([answer(*A, "A"), answer(*B, "B")], "MODEL_A", "STRONG_MATCH", RULES, blind(0, 0, 0, 0)),
    "q2": ([answer(*A, "C"), answer(*B, "C")], "TIE", "WEAK_MATCH", RULES, blind(1, 1, 1, 1)),
    # one answer: no pair; MODEL_B won, so there is no winning letter and the blind check has no key
    "q3": ([answer("listener_a", "z", "", "D")], "MODEL_B", "STRONG_MATCH", RULES, blind(3, 3, 3, 3)),
    "q4": ([answer(*A, "B"), answer(*B, None)], "MODEL_A", "CONFLICT", ("llm", "j", "p2"), blind(1, 1, 1, 0)),
    "q5": ([answer(*A, "A"), answer(*B, "A")], "NONE", "STRONG_MATCH", RULES, blind(0, 0, 0, 0)),
}
# question_id: node, letter, text, single source
KEPT = {"q1": (N1, "A", "Low", True), "q2": (N1, "C", "High", None), "q4": (N2, "B", "High", False)}
REJECTS = [("ingest", "x.wav", "unreadable", "bad header"), ("filter", "q2", "leakage", "the option says it"),
           ("filter", "q5", "duplicate", "same as q1"), ("filter", "q3", "unanswerable", "no"),
           ("generate", f"c3|{N2}|r0#1", "malformed_question", "options are not distinct"),
           ("generate", f"c3|{N2}|r0", "malformed_question", "no usable question")]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunFolder:
    run = RunFolder(tmp_path_factory.mktemp("arrow") / "run")
    clips = rows("clips", 0, 3)
    for c, (cid, src, s) in zip(clips, [("c1", "a.wav", 1800.0), ("c2", "a.wav", 1800.0), ("c3", "b.wav", 3600.0)]):
        c.update(clip_id=cid, source_uri=src, duration_s=s)
    run.write("clips", clips)
    run.write("annotations", [  # out of key order: measures and first-seen tags come in clip order
        {**blank(ANNOTATIONS), "clip_id": "c3", "producer": "t", "tag_content": "music", "gender": "female",
         "f0_median_hz": 200.0, "caption_backend": ""},
        {**blank(ANNOTATIONS), "clip_id": "c2", "producer": "t", "tag_content": "speech", "duration_s": 1800.0,
         "asr_model": ""},  # null measures and gender
        {**blank(ANNOTATIONS), "clip_id": "c1", "producer": "t", "tag_content": "speech", "gender": "male",
         "f0_median_hz": 100.0, "duration_s": 1800.0, "asr_model": "whisper", "caption_backend": "qwen"}])
    run.write("questions", [
        {**blank(QUESTIONS), "question_id": q, "clip_id": c, "node_path": n, "round": r, "question": f"{q}?",
         "options": ["w", "x", "y", "z"], "writer_backend": w[0], "writer_model": w[1], "prompt_version": w[2],
         "answer_key": key, "producer": "t"} for q, (c, n, r, w, key) in QUESTION.items()])
    run.write("verdicts", [
        {**blank(VERDICTS), "question_id": q, "clip_id": QUESTION[q][0], "node_path": QUESTION[q][1],
         "round": QUESTION[q][2], "answers": answers, "consensus": False, "consistency_with_caption": c,
         "winner": w, "final_action": "KEEP_USING_WINNER", "judge_backend": j[0], "judge_model": j[1],
         "judge_prompt_version": j[2], "blind": b, "producer": "t"} for q, (answers, w, c, j, b) in VERDICT.items()])
    kept = rows("kept", 0, 3)
    for k, (q, (node, letter, text, single)) in zip(kept, KEPT.items()):
        k.update(question_id=q, round=QUESTION[q][2], node_path=node, answer=letter, answer_text=text,
                 single_source=single)
    run.write("kept", kept[::-1])  # out of key order: the summary counts in key order (first-seen texts)
    run.write("rejects", [{"stage": s, "item_id": i, "reason_code": r, "detail": d, "source": "t", "producer": "t"}
                          for s, i, r, d in REJECTS])
    return run


def test_the_funnel_rounds_and_rejects(run):
    s = summarize(run, None)
    assert (s["sources"], s["num_sources"], s["audio_hours"]) == (["a.wav", "b.wav"], 2, 2.0)
    assert s["funnel"] == {"inputs": 3, "clips": 3, "annotated": 3, "questions": 5, "verified": 5, "kept": 3,
                           "corpus": 0}
    assert s["yield"] == {"inputs->clips": 1.0, "clips->annotated": 1.0, "annotated->questions": 1.6667,
                          "questions->verified": 1.0, "verified->kept": 0.6, "kept->corpus": 0.0}
    assert s["rounds"] == {"0": {"questions": 3, "verified": 3, "kept": 2, "yield": 0.6667},
                           "1": {"questions": 2, "verified": 2, "kept": 1, "yield": 0.5}}
    assert s["rejects"] == {"filter": {"duplicate": 1, "leakage": 1, "unanswerable": 1},
                            "generate": {"malformed_question": 2}, "ingest": {"unreadable": 1}}
    assert s["throughput"] == {}


def test_answers_verdicts_and_backends(run):
    s = summarize(run, None)
    # pairs: q1 (A, B), q2 (C, C), q5 (A, A); q3 has one answer, q4's second has no letter.
    # observed agreement 2/3, chance (2/3 * 1/3 for A) + (1/3 * 1/3 for C) = 1/3: kappa (2/3 - 1/3) / (2/3)
    assert s["answerer_agreement"] == {"cohen_kappa": 0.5, "both_answered": 3, "verified": 5}
    assert s["verdicts"] == {"winner": {"MODEL_A": 2, "TIE": 1, "MODEL_B": 1, "NONE": 1},
                             "consistency": {"STRONG_MATCH": 3, "WEAK_MATCH": 1, "CONFLICT": 1}}
    assert list(s["verdicts"]["winner"]) == ["MODEL_A", "TIE", "MODEL_B", "NONE"]  # first seen, by question id
    assert s["backends"] == {"asr": ["whisper"], "captioner": ["qwen:-"],
                             "question_writer": ["local:m@v1", "template:-@v3"],
                             "answerers": ["listener_a=x:m1", "listener_a=z:-", "listener_b=y:-"],
                             "judge": ["llm:j@p2", "rules:-@rules-v1"]}


def test_text_answerable_keys_and_nulls(run):
    s = summarize(run, None)
    # q1: key A (the template's), 4 of 4 picks; q2: the tie's letter C, 0 picks; q4: MODEL_A's B, 3 of 4.
    # q3 (MODEL_B won, no second answer) and q5 (no winner) have no key: not checked.
    assert s["text_answerable"] == {
        "min_hits": 3, "text_answerable": 2, "checked": 3, "rate": 0.6667,
        "per_node": {N2: {"text_answerable": 1, "checked": 1, "rate": 1.0},
                     N1: {"text_answerable": 1, "checked": 2, "rate": 0.5}},
        "per_writer": {"local:m": {"text_answerable": 1, "checked": 1, "rate": 1.0},
                       "template:-": {"text_answerable": 1, "checked": 2, "rate": 0.5}}}
    assert list(s["text_answerable"]["per_node"]) == sorted([N1, N2])


def test_kept_items_tags_and_measures(run):
    s = summarize(run, None)
    assert s["taxonomy_coverage"]["kept_per_node"] == {N2: 1, N1: 2}
    assert s["taxonomy_coverage"]["nodes_covered"] == 0  # NODES are not taxonomy leaves
    assert s["answer_letters"] == {"counts": {"A": 1, "B": 1, "C": 1, "D": 0}, "chi2_p": 1.0, "balanced": True}
    assert s["keys_per_node"] == {
        N2: {"kept": 1, "positions": {"A": 0, "B": 1, "C": 0, "D": 0}, "texts": {"High": 1}, "top_text": "High",
             "top_share": 1.0, "single_source": 0, "single_source_share": 0.0},
        N1: {"kept": 2, "positions": {"A": 1, "B": 0, "C": 1, "D": 0}, "texts": {"Low": 1, "High": 1},
             "top_text": "Low", "top_share": 0.5, "single_source": 1, "single_source_share": 0.5}}
    assert list(s["keys_per_node"][N1]["texts"]) == ["Low", "High"]  # a tie: q1's text was seen first
    assert list(s["tags"]["gender"].items()) == [("male", 1), ("None", 1), ("female", 1)]
    assert list(s["tags"]["tag_content"].items()) == [("speech", 2), ("music", 1)]
    assert s["tags"]["language"] == {"None": 3}
    assert s["measures"] == {"f0_median_hz": [100.0, 200.0], "speech_rate_sps": [], "loudness_lufs": [],
                             "snr_db": [], "duration_s": [1800.0, 1800.0]}


def test_retry_items_from_fixable_rejects(run):
    n1 = {"clip_id": "c1", "node_path": N1, "round": 1, "n": 1,
          "feedback": 'round 0: leakage: "q2?" (the option says it)'}
    n2 = {"clip_id": "c3", "node_path": N2, "round": 2, "n": 1,
          "feedback": 'round 0: malformed_question: options are not distinct | round 1: duplicate: "q5?" (same as q1)'}
    assert retry_items(run, 2) == [n1, n2]
    assert retry_items(run, 1) == [n1]  # c3's latest round (1) is the last
