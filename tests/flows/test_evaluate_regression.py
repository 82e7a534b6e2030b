"""When a retrained checkpoint counts as a regression (flows/evaluate.py `score_regression`): worse than
the best beyond `max_score_drop` and, for an accuracy over n items, beyond the 95% interval of the
difference. No Prefect server: the alert path is tests/flows/test_alerts.py."""

from flows.evaluate import regression_message, score_regression
from model.scoring import compare


def _summary(name, **metrics):
    return {"checkpoint": name, "metrics": metrics}


def test_an_accuracy_drop_beyond_its_interval_is_a_regression_and_one_within_it_is_not():
    best = _summary("best", mcq={"accuracy": 0.8, "n": 200})
    far = _summary("far", mcq={"accuracy": 0.6, "n": 200})
    near = _summary("near", mcq={"accuracy": 0.76, "n": 200})   # -0.04, inside 1.96 SE (~0.08)
    found = score_regression(best, far, compare(best, far))
    assert found["metric"] == "mcq.accuracy" and found["delta"] == -0.2 and found["interval"] == 0.0877
    assert found["bound"] == 0.0877 and found["best_checkpoint"] == "best" and found["checkpoint"] == "far"
    assert score_regression(best, near, compare(best, near)) is None
    # the same 0.04 drop over 20000 items each is beyond the interval (~0.008)
    big_best = _summary("best", mcq={"accuracy": 0.8, "n": 20000})
    big_near = _summary("near", mcq={"accuracy": 0.76, "n": 20000})
    assert score_regression(big_best, big_near, compare(big_best, big_near))["interval"] == 0.0081
    # ... unless the configured absolute bound allows it
    assert score_regression(big_best, big_near, compare(big_best, big_near), max_score_drop=0.05) is None


def test_better_first_tie_and_wer_use_their_own_rules():
    best = _summary("best", asr={"wer": 0.20, "n": 50})
    worse = _summary("worse", asr={"wer": 0.26, "n": 50})
    better = _summary("better", asr={"wer": 0.15, "n": 50})
    assert score_regression(best, better, compare(best, better)) is None
    assert score_regression(best, best, compare(best, best)) is None  # tie
    assert score_regression(best, worse, {"verdict": "first", "metrics": [], "decided_by": None}) is None
    found = score_regression(best, worse, compare(best, worse))  # WER rises 0.06: no interval, bound 0
    assert found["metric"] == "asr.wer" and found["interval"] is None and found["delta"] == 0.06
    assert score_regression(best, worse, compare(best, worse), max_score_drop=0.1) is None
    text = regression_message(found, "http://ui/runs/flow-run/1", "runs/x@2")
    assert "- asr.wer: 0.2 -> 0.26 (+0.06; bound 0.0: max_score_drop 0.0)" in text, text
    assert "worse than the best so far (best) on runs/x@2" in text and "flow run: http://ui/runs/flow-run/1" in text
