"""`dataflux train`, `evaluate` and `compare` as a user runs them, on the demo corpus with the tiny
config and a few steps: what each prints and writes."""

import json

import pytest

from dataflux.cli import main
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_train_evaluate_compare_from_the_command_line(demo_published, tmp_path, capsys):
    run_dir = str(demo_published[0].local_path)
    version = demo_published[0].table("corpus").version()
    out = tmp_path / "train"
    assert main(["train", "--config", str(ROOT / "examples" / "train-tiny.yaml"), "--corpus", f"{run_dir}@{version}",
                 "--out", str(out), "--max-steps", "3"]) == 0
    printed = capsys.readouterr().out
    assert "trained 3 steps" in printed and f"checkpoint: {out / 'final'}" in printed
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 3

    evaluation = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(out / "final"), "--data", f"{run_dir}@{version}", "--out",
                 str(evaluation), "--max-new-tokens", "4", "--eval-fraction", "0.15"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((evaluation / "summary.json").read_text())
    n = summary["metrics"]["mcq"]["n"]
    assert n > 0 and len((evaluation / "predictions.jsonl").read_text().splitlines()) == n
    assert json.loads(printed.split("report:")[0]) == summary["metrics"]
    assert f"report: {evaluation / 'report.md'}" in printed

    assert main(["compare", str(evaluation / "summary.json"), str(evaluation / "summary.json")]) == 0
    assert "verdict: B is tie (decided by mcq.accuracy)" in capsys.readouterr().out
    better = json.loads(json.dumps(summary))
    better["metrics"]["mcq"]["accuracy"] = summary["metrics"]["mcq"]["accuracy"] + 0.25
    (tmp_path / "better.json").write_text(json.dumps(better))
    assert main(["compare", str(evaluation / "summary.json"), str(tmp_path / "better.json")]) == 0
    printed = capsys.readouterr().out
    assert "verdict: B is better (decided by mcq.accuracy)" in printed and "(+0.25) better" in printed
