"""`dataflux evaluate --suite` on benchmarks in their published layouts writes one table in the paper's
layout; `dataflux compare` of two runs shows deltas with paired bootstrap 95% intervals and flags a
regression beyond the interval. The CLI runs in a child process."""

import json
import subprocess
import sys

import pytest
import yaml

from model.benchmarks.suite import GROUPS, compare_runs, load_suite
from tests.model.benchmark_layouts import WRITERS, emotion_labels

SUITE = [("LibriSpeech-clean", "librispeech"), ("AISHELL-2", "kaldi"), ("MMAU", "mmau"), ("MMAR", "mmar"),
         ("OpenBookQA", "voicebench-openbookqa"), ("IFEval", "voicebench-ifeval"), ("AdvBench", "voicebench-advbench"),
         ("Emotion", "labels")]  # last in the file, its column goes to the paralinguistic group


def cli(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "dataflux.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def tiny_checkpoint(folder, seed):
    from model.tiny import tiny_model_and_processor

    model, processor = tiny_model_and_processor(seed=seed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.slow  # three CLI processes (~1-2 min)
def test_evaluate_suite_writes_the_table_and_compare_shows_deltas_with_intervals(tmp_path):
    data = tmp_path / "data"
    entries = []
    for name, reader in SUITE:  # MMAU listed before AISHELL-2 in the file would still sort by group
        if reader == "labels":  # a label file in our own schema
            entries.append({"name": name, "kind": "labels", "path": str(emotion_labels(data).relative_to(tmp_path))})
            continue
        path = WRITERS[reader](data)
        entries.append({"name": name, "reader": reader, "path": str(path.relative_to(tmp_path))})
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"batch_size": 4, "benchmarks": entries}))
    a = tiny_checkpoint(tmp_path / "ck-a", 0)
    b = tiny_checkpoint(tmp_path / "ck-b", 1)

    out = cli("evaluate", "--checkpoint", a, "--suite", tmp_path / "suite.yaml", "--out", tmp_path / "run-a",
              "--max-new-tokens", "6")
    table = json.loads((tmp_path / "run-a" / "table.json").read_text())
    assert [c["name"] for c in table["columns"]] == ["LibriSpeech-clean", "AISHELL-2", "MMAU", "MMAR", "OpenBookQA",
                                                     "Emotion", "IFEval", "AdvBench"]
    assert [c["group"] for c in table["columns"]] == sorted((c["group"] for c in table["columns"]), key=GROUPS.index)
    assert [c["metric"] for c in table["columns"]] == ["wer", "wer", "official_accuracy", "official_accuracy",
                                                       "official_accuracy", "accuracy", "prompt_level_strict",
                                                       "refusal_rate"]
    emotion = table["columns"][5]
    assert emotion["group"] == "Paralinguistics" and emotion["n"] == 3
    assert set(emotion["metrics"]) == {"label"} and "macro_f1" in emotion["metrics"]["label"]
    md = (tmp_path / "run-a" / "table.md").read_text()
    assert "| ASR |  | Understanding and reasoning |  |  | Paralinguistics | Instruction following |" in md
    assert "**AdvBench**" in md and "- Paralinguistics: label accuracy %" in md and md in out
    for name, _ in SUITE:
        assert (tmp_path / "run-a" / name / "report.md").exists()

    assert out.count("inferred now") == len(SUITE)  # each benchmark's resumption: test_benchmarks_eval.py

    cli("evaluate", "--checkpoint", b, "--suite", tmp_path / "suite.yaml", "--out", tmp_path / "run-b",
        "--max-new-tokens", "6")
    shown = cli("compare", tmp_path / "run-a", tmp_path / "run-b")
    assert "95% interval" in shown and "regressions beyond the 95% interval:" in shown
    for name, _ in SUITE:
        row = next(line for line in shown.splitlines() if line.startswith(f"| {name} |"))
        assert row.count("[") == 1 or "incomparable" in row


def _run(folder, name, metric, higher, scored):
    (folder / name).mkdir(parents=True)
    (folder / name / "scored.jsonl").write_text("\n".join(json.dumps(s) for s in scored))
    (folder / "table.json").write_text(json.dumps({"checkpoint": str(folder), "columns": [
        {"name": name, "group": "ASR" if metric == "wer" else "Understanding and reasoning", "metric": metric,
         "value": 0, "higher_is_better": higher}]}))
    return folder


@pytest.mark.parametrize("flips,verdict", [(25, "regression"), (1, "within noise"), (-10, "improvement")])
def test_compare_flags_a_regression_only_beyond_the_interval(tmp_path, flips, verdict):
    a = [{"id": str(i), "correct": i < 40} for i in range(50)]  # 80%
    b = [{"id": s["id"], "correct": (not s["correct"]) if (int(s["id"]) < flips if flips > 0 else
                                                            40 <= int(s["id"]) < 40 - flips) else s["correct"]}
         for s in a]
    result = compare_runs(_run(tmp_path / "a", "MMSU", "accuracy", True, a),
                          _run(tmp_path / "b", "MMSU", "accuracy", True, b))
    row = result["benchmarks"][0]
    assert row["verdict"] == verdict and row["n"] == 50
    assert row["ci95"][0] <= row["delta"] <= row["ci95"][1]
    assert (result["regressions"] == ["MMSU"]) == (verdict == "regression")


@pytest.mark.parametrize("flips,code", [(25, 1), (1, 0), (-10, 0)])  # regression, within noise, improvement
def test_compare_fail_on_regression_exits_1_only_for_a_regression_beyond_the_interval(tmp_path, capsys, flips,
                                                                                       code):
    from dataflux.cli import main

    a = [{"id": str(i), "correct": i < 40} for i in range(50)]
    b = [{"id": s["id"], "correct": (not s["correct"]) if (int(s["id"]) < flips if flips > 0 else
                                                            40 <= int(s["id"]) < 40 - flips) else s["correct"]}
         for s in a]
    run_a, run_b = _run(tmp_path / "a", "MMSU", "accuracy", True, a), _run(tmp_path / "b", "MMSU", "accuracy", True, b)
    assert main(["compare", str(run_a), str(run_b)]) == 0  # without the flag: a report, never a failure
    shown = capsys.readouterr().out
    assert main(["compare", str(run_a), str(run_b), "--fail-on-regression"]) == code
    assert capsys.readouterr().out == shown  # the same report either way
    assert ("regressions beyond the 95% interval: MMSU" in shown) == (code == 1)


def test_compare_fail_on_regression_is_in_help_and_refused_for_two_summaries(tmp_path, capsys):
    from dataflux.cli import main

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "--fail-on-regression" in capsys.readouterr().out
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"metrics": {"mcq": {"accuracy": 0.5, "n": 10}}}))
    assert main(["compare", str(summary), str(summary), "--fail-on-regression"]) == 2
    assert "two suite runs" in capsys.readouterr().err


def test_a_higher_wer_is_a_regression(tmp_path):
    a = [{"id": str(i), "S": 0, "D": 0, "I": 0, "N": 10} for i in range(30)]
    b = [{"id": str(i), "S": 3, "D": 1, "I": 0, "N": 10} for i in range(30)]
    result = compare_runs(_run(tmp_path / "a", "LS", "wer", False, a), _run(tmp_path / "b", "LS", "wer", False, b))
    assert result["benchmarks"][0]["delta"] == 40.0 and result["regressions"] == ["LS"]


def test_a_suite_names_known_readers_and_resolves_paths_against_its_file(tmp_path):
    one = {"name": "X", "reader": "mmau", "path": "d.json"}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"benchmarks": [one]}))
    assert load_suite(tmp_path / "s.yaml").benchmarks[0].path == str(tmp_path / "d.json")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"benchmarks": [{"name": "X", "reader": "nope", "path": "d"}]}))
    with pytest.raises(ValueError, match="unknown reader 'nope'"):
        load_suite(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"benchmarks": [
        {"name": "X", "reader": "librispeech", "path": "d", "caption_qa": {"base_url": "http://x/v1", "model": "m"}}]}))
    with pytest.raises(ValueError, match="MMAU or MMAR"):
        load_suite(tmp_path / "s.yaml")


def test_a_labels_entry_is_scored_into_the_paralinguistic_group(tmp_path):
    """`kind: labels` names a label file in our own schema: its column is the label accuracy, in the
    paralinguistic group; scored here from known predictions (score-only), so the numbers are exact."""
    from model.benchmarks.suite import run_suite

    path = emotion_labels(tmp_path / "data")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"benchmarks": [
        {"name": "AdvBench", "reader": "voicebench-advbench", "path": "data/advbench"},
        {"name": "Emotion", "kind": "labels", "path": str(path.relative_to(tmp_path))}]}))
    suite = load_suite(tmp_path / "s.yaml")
    assert suite.benchmarks[1].path == str(path) and suite.benchmarks[1].reader is None
    suite = suite.model_copy(update={"benchmarks": suite.benchmarks[1:]})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    said = {"e0": "The speaker sounds joyful.", "e1": "Angry.", "e2": "furious"}  # happy, wrong, angry
    (tmp_path / "run" / "Emotion").mkdir(parents=True)
    (tmp_path / "run" / "Emotion" / "predictions.jsonl").write_text("\n".join(json.dumps(
        {"id": r["id"], "task": "label", "category": r["family"], "prediction": said[r["id"]], "label": r["label"],
         "family": r["family"]}) for r in rows))
    table = run_suite("tiny", suite, tmp_path / "run", score_only=True, progress=lambda _: None)
    (column,) = table["columns"]
    assert (column["group"], column["metric"], column["value"], column["n"]) == ("Paralinguistics", "accuracy",
                                                                                 66.67, 3)
    assert column["metrics"]["label"]["macro_f1"] == 0.5556  # happy 1, sad 0, angry 2/3
    assert "| Paralinguistics |" in (tmp_path / "run" / "table.md").read_text()

    # a labels entry takes no reader and wants a file of label rows
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"benchmarks": [
        {"name": "E", "kind": "labels", "reader": "mmau", "path": "e.jsonl"}]}))
    with pytest.raises(ValueError, match="no reader"):
        load_suite(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"benchmarks": [{"name": "E", "kind": "labels", "path": "d"}]}))
    with pytest.raises(ValueError, match=".jsonl or .parquet"):
        load_suite(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"benchmarks": [{"name": "E", "path": "d"}]}))
    with pytest.raises(ValueError, match="give a reader"):
        load_suite(tmp_path / "s.yaml")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(path.read_text() + json.dumps({**rows[0], "id": "x", "task": "asr", "reference": "hi"}) + "\n")
    with pytest.raises(ValueError, match="task: label only; .* has task asr"):
        run_suite("tiny", suite.model_copy(update={"benchmarks": [suite.benchmarks[0].model_copy(
            update={"path": str(mixed)})]}), tmp_path / "run2", score_only=True)


def test_the_shipped_paper_suite_parses_and_lists_the_papers_benchmarks_in_its_groups():
    """examples/paper-suite.yaml: placeholder paths (not required to exist to load), every column known."""
    from pathlib import Path

    from model.benchmarks import READERS
    from model.benchmarks.suite import group_of

    path = Path(__file__).resolve().parents[2] / "examples" / "paper-suite.yaml"
    suite = load_suite(path)
    columns = {b.name: group_of(b) for b in suite.benchmarks}
    assert columns == {
        "LibriSpeech-clean": "ASR", "LibriSpeech-other": "ASR", "Fleurs-en": "ASR", "AISHELL-2": "ASR",
        "WenetSpeech-meeting": "ASR", "WenetSpeech-net": "ASR",
        "MMAU": "Understanding and reasoning", "MMAR": "Understanding and reasoning",
        "MMSU": "Understanding and reasoning", "OpenBookQA": "Understanding and reasoning",
        "Emotion": "Paralinguistics", "IFEval": "Instruction following", "AdvBench": "Safety",
        "MMAU-caption": "Dense captioning", "MMAR-caption": "Dense captioning"}
    assert set(GROUPS) == set(columns.values())
    assert all(b.reader in READERS for b in suite.benchmarks if b.kind == "benchmark")
    # placeholders, resolved against the file's folder
    assert all(Path(b.path).is_relative_to(path.parent / "data") for b in suite.benchmarks)
    kaldi = [b for b in suite.benchmarks if b.reader == "kaldi"]
    assert len(kaldi) == 3 and all(b.options == {"language": "zh"} for b in kaldi)
