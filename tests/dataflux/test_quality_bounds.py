"""The quality bounds between two corpus versions (`dataflux.history.regressions`), the blind-answerable
rate among them: recorded from the summary's `text_answerable`, derived on read from the row's summary
JSON (no column of its own), a regression beyond `max_text_answerable_rise`."""

import json

from dataflux.history import QualityBounds, history, history_row, regression_message, regressions
from storage.run_folder import RunFolder


def _summary(version: int, rate: float | None, checked: int = 100, kappa: float = 0.8, p: float = 0.5) -> dict:
    blind = {"min_hits": 3, "text_answerable": None if rate is None else round(rate * checked), "checked": checked,
             "rate": rate, "per_node": {}, "per_writer": {}}
    return {"corpus_version": version, "funnel": {"corpus": 10 * (version + 1), "questions": 100, "verified": 100,
                                                  "kept": 80},
            "yield": {"questions->verified": 1.0, "verified->kept": 0.8},
            "answerer_agreement": {"cohen_kappa": kappa, "both_answered": 100},
            "answer_letters": {"chi2_p": p, "balanced": p >= 0.01, "counts": {"A": 20, "B": 20, "C": 20, "D": 20}},
            "taxonomy_coverage": {"nodes_covered": 5, "nodes_total": 6, "kept_per_node": {}},
            "text_answerable": blind}


def test_a_blind_answerable_rise_beyond_the_bound_is_a_regression():
    assert QualityBounds().max_text_answerable_rise == 0.05
    before, small, large = (history_row(_summary(0, 0.04)), history_row(_summary(1, 0.08), 10),
                            history_row(_summary(1, 0.12), 10))
    assert (before["text_answerable_rate"], before["text_answerable_checked"]) == (0.04, 100)
    assert regressions(before, small) == []  # +0.04 is within 0.05
    found = regressions(before, large)
    assert found == [{"figure": "text_answerable_rate", "from": 0.04, "to": 0.12, "change": 0.08,
                      "bound": "rise <= 0.05", "limit": 0.05}]
    assert regressions(before, large, QualityBounds(max_text_answerable_rise=0.1)) == []
    assert regressions(large, before) == []  # a fall is an improvement
    unmeasured = history_row(_summary(1, None, checked=0))
    assert unmeasured["text_answerable_rate"] is None and regressions(before, unmeasured) == []
    text = regression_message("runs/x", before, large, found, None)
    assert "- text_answerable_rate: 0.04 -> 0.12 (+0.08; bound: rise <= 0.05)" in text, text


def test_the_other_bounds_still_fire_each_on_its_own_figure():
    base = history_row(_summary(0, 0.04))
    worse = history_row(_summary(1, 0.04, kappa=0.6, p=0.001), 10)
    assert {r["figure"] for r in regressions(base, worse)} == {"kappa", "letters_chi2_p"}


def test_the_rate_is_read_back_from_the_history_table_and_diffed(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write("corpus_history", [history_row(_summary(0, 0.04)), history_row(_summary(1, 0.12), 10)])
    assert "text_answerable_rate" not in run.table("corpus_history").schema.names  # derived, not stored
    rows = history(run).select(["corpus_version", "text_answerable_rate", "text_answerable_checked"]).to_pylist()
    assert rows == [{"corpus_version": 0, "text_answerable_rate": 0.04, "text_answerable_checked": 100},
                    {"corpus_version": 1, "text_answerable_rate": 0.12, "text_answerable_checked": 100}]
    h = history(run).to_pylist()
    assert [r["figure"] for r in regressions(h[0], h[1])] == ["text_answerable_rate"]
    assert json.loads(h[1]["summary"])["text_answerable"]["rate"] == 0.12
