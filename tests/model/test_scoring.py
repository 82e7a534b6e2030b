"""Scoring with hand-computed values."""

import json

import pytest

from model.scoring import compare, gold_letter, macro_f1, map_label, score_one, summarize


def test_wer_with_an_empty_hypothesis_is_all_deletions():
    s = score_one({"task": "asr", "reference": "The cat sat.", "prediction": "", "language": "en"})
    assert (s["S"], s["D"], s["I"], s["N"], s["empty"]) == (0, 3, 0, 3, True)
    m = summarize([s, score_one({"task": "asr", "reference": "a b c d", "prediction": "a x c d e"})])["asr"]
    # (0+3+0) + (1+0+1) errors over 3 + 4 reference words
    assert m["wer"] == round(5 / 7, 4) and m["empty_hypotheses"] == 1
    assert (m["substitutions"], m["deletions"], m["insertions"]) == (1, 3, 1)


def test_character_error_rate_for_chinese():
    s = score_one({"task": "asr", "reference": "今天天气很好", "prediction": "今天天很好", "language": "zh"})
    assert (s["S"], s["D"], s["I"], s["N"]) == (0, 1, 0, 6)


def test_an_unparsed_multiple_choice_answer_is_wrong_and_counted():
    options = ["A dog", "A cat", "A bird", "A car"]
    rows = [score_one({"task": "mcq", "prediction": "Answer: B", "answer": "B", "options": options, "category": "x"}),
            score_one({"task": "mcq", "prediction": "I think it is a cat.", "answer": "B", "options": options,
                       "category": "x"}),
            score_one({"task": "mcq", "prediction": "hmm, hard to say", "answer": "B", "options": options,
                       "category": "y"})]
    assert [r["correct"] for r in rows] == [True, True, False] and rows[2]["predicted"] is None
    m = summarize(rows)["mcq"]
    assert m["accuracy"] == round(2 / 3, 4) and m["unparsed"] == 1 and m["n"] == 3
    assert m["per_category"] == {"x": {"accuracy": 1.0, "n": 2}, "y": {"accuracy": 0.0, "n": 1}}


def test_gold_answers_given_as_option_text_mmau_style():
    assert gold_letter("A cat", ["A dog", "A cat"]) == "B" and gold_letter("C", ["a", "b", "c"]) == "C"


@pytest.mark.parametrize("text, label", [("She sounds joyful.", "happy"), ("ANGRY", "angry"),
                                         ("happy, and also sad", None), ("no idea", None)])
def test_synonym_mapping(text, label):
    assert map_label(text, "emotion") == label


def test_label_accuracy_and_macro_f1_by_hand():
    pairs = [("happy", "happy"), ("happy", "sad"), ("sad", "sad"), ("sad", None)]
    # happy: tp 1, fp 0, fn 1 -> 2/3; sad: tp 1, fp 1, fn 1 -> 2/4; mean 0.5833
    assert macro_f1(pairs) == pytest.approx((2 / 3 + 0.5) / 2)
    rows = [score_one({"task": "label", "prediction": p or "dunno", "label": g, "family": "emotion"}) for g, p in pairs]
    m = summarize(rows)["label"]
    assert m["accuracy"] == 0.5 and m["unmapped"] == 1


def test_compare_follows_the_primary_metric_and_lower_wer_is_better(tmp_path):
    a = {"checkpoint": "a", "metrics": {"mcq": {"accuracy": 0.5}, "asr": {"wer": 0.2}}}
    b = {"checkpoint": "b", "metrics": {"mcq": {"accuracy": 0.6}, "asr": {"wer": 0.3}}}
    result = compare(a, b)
    assert result["verdict"] == "better" and result["decided_by"] == "mcq.accuracy"
    wer = next(r for r in result["metrics"] if r["metric"] == "asr.wer")
    assert not wer["b_better"]
    assert compare({"metrics": {"asr": {"wer": 0.3}}}, {"metrics": {"asr": {"wer": 0.2}}})["verdict"] == "better"
    assert json.dumps(result)
