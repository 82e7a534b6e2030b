"""benchmarks/run_all.py's README table: generated from the result files, and in sync with them."""

import json

import pytest

from benchmarks.run_all import BEGIN, END, README, RESULTS, table, update_readme


def result(name, passed=True):
    return {"name": name, "unit": "clips/s", "value": 12.5, "baseline_name": "plain loop", "baseline_value": 10.0,
            "ratio": 1.25, "target": "ratio >= 0.9", "passed": passed, "cores": 2, "date": "2026-11-27"}


def test_the_table_is_rebuilt_between_the_markers_only(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "a.json").write_text(json.dumps(result("a")))
    (results / "b.json").write_text(json.dumps(result("b", passed=False)))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{BEGIN}\nold table\n{END}\n\nafter\n")
    update_readme(readme, results)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{END}\n\nafter\n")
    assert "old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows[0].startswith("| `a` | 12.5 clips/s | 10 (plain loop) | 1.25 | ratio >= 0.9 | yes | 2 cores")
    assert "| **no** |" in rows[1]
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="section"):
        update_readme(readme, results)


def test_the_readme_shows_the_committed_results():
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    assert len(results) >= 7
    assert table(results) in README.read_text(), "run `python benchmarks/run_all.py --table-only`"
