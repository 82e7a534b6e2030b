"""benchmarks/ablation.py end to end at its quick size: synthesis, the pipeline, four training sets, the tiny
model trained and evaluated on each (in a child process, as a user runs it), and the JSON it writes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ablation import CONDITIONS, LEAVES, bootstrap, paired_delta  # noqa: E402


def test_bootstrap_intervals_cover_the_mean_and_shrink_with_more_items():
    acc, low, high = bootstrap([True] * 30 + [False] * 70)
    assert acc == 0.3 and low < 0.3 < high and high - low < 0.2
    _, low_big, high_big = bootstrap([True] * 300 + [False] * 700)
    assert high_big - low_big < (high - low) / 2
    a = [{"id": i, "correct": i % 2 == 0} for i in range(200)]
    assert paired_delta(a, a) == {"delta": 0.0, "ci95": [0.0, 0.0]}


@pytest.mark.slow
def test_quick_ablation_writes_four_conditions_with_intervals(tmp_path):
    out = tmp_path / "ablation.json"
    subprocess.run([sys.executable, "benchmarks/ablation.py", "--quick", "--out", str(out), "--work",
                    str(tmp_path / "work")], cwd=ROOT, check=True, timeout=300, capture_output=True)
    result = json.loads(out.read_text())
    assert result["name"] == "ablation" and "verdict" in result
    assert set(result["conditions"]) == set(CONDITIONS)
    for name, c in result["conditions"].items():
        assert c["train_items"] > 0, name
        assert c["ci95"][0] <= c["accuracy"] <= c["ci95"][1], name
        assert c["n"] == result["config"]["held_out_items"] == 4 * len(LEAVES)
        assert set(c["per_node"]) == set(LEAVES)
        assert [p["step"] for p in c["accuracy_curve"]][-1] == result["config"]["steps"]
        assert c["loss_curve"]
    conditions = result["conditions"]
    unverified, noisy = conditions["unverified"], conditions["noisy_writer"]
    assert unverified["train_items"] == noisy["train_items"]
    assert conditions["not_text"]["train_items"] <= conditions["verified"]["train_items"] <= unverified["train_items"]
    # The noisy writer really moved 30% of the keys: measured against the synthesis truth, its wrong keys
    # rise by 0.3 * (1 - w) - 0.1 * w over the writer's own rate w (a moved wrong key lands on the truth 1 in 3).
    assert abs(result["corrupted_share"] - 0.3) <= 1 / noisy["train_items"]
    assert noisy["wrong_keys"] - unverified["wrong_keys"] >= 0.15
    assert noisy["wrong_keys"] >= 0.25
