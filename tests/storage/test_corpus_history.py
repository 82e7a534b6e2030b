"""Quality over time: each publish adds its summary to `corpus_history`; `dataflux tables diff` shows
rows added and removed between two versions and the change in each summary figure; versions published
before the history existed are backfilled from their summary.json."""

import json
import shutil
import subprocess
import sys

import pytest

from dataflux.history import backfill, diff, history
from dataflux.stages.publish import run_publish
from storage.run_folder import RunFolder
from tests.storage.fill import NODES, kept_rows, rows

@pytest.fixture(scope="module")
def published(tmp_path_factory):
    run = RunFolder(tmp_path_factory.mktemp("history") / "run")
    run.write("clips", rows("clips", 0, 8))
    run.write("questions", rows("questions", 0, 8))
    run.write("kept", kept_rows(0, 4))
    run_publish(run)  # corpus v0: 4 items
    run.write("kept", kept_rows(4, 3))
    run_publish(run)  # corpus v1: 7 items
    return run


def test_each_publish_records_its_figures(published):
    h = {r["corpus_version"]: r for r in history(published).to_pylist()}
    assert sorted(h) == [0, 1]
    assert (h[0]["corpus_rows"], h[0]["new_items"], h[1]["corpus_rows"], h[1]["new_items"]) == (4, 4, 7, 3)
    assert json.loads(h[0]["letter_counts"]) == {"A": 1, "B": 1, "C": 1, "D": 1}
    assert json.loads(h[1]["kept_per_node"]) == {NODES[0]: 4, NODES[1]: 3}
    assert h[1]["questions"] == 8 and h[1]["yield_verified_kept"] is None  # nothing verified: no yield
    assert json.loads(h[1]["summary"])["corpus_version"] == 1
    run_publish(published)  # nothing new: no version, no history row
    assert history(published).num_rows == 2


def test_diff_shows_rows_and_figures(published):
    d = diff(published, "corpus", 0, 1)
    assert (d["added"], d["removed"], d["unchanged"]) == (3, 0, 4)
    assert d["per_node"] == {NODES[0]: {"from": 2, "to": 4, "change": 2}, NODES[1]: {"from": 2, "to": 3, "change": 1}}
    assert d["figures"]["corpus_rows"] == {"from": 4, "to": 7, "change": 3}
    assert d["figures"]["kept"]["change"] == 3
    back = diff(published, "corpus", 1, 0)
    assert (back["added"], back["removed"]) == (0, 3)
    out = subprocess.run([sys.executable, "-m", "dataflux.cli", "tables", "diff", published.local_path, "--table",
                          "corpus", "--from", "0", "--to", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "corpus version 0 -> 1: 4 -> 7 rows, +3 added, -0 removed, 4 unchanged" in out.stdout
    assert "corpus_rows: 4 -> 7 (+3)" in out.stdout and f"node {NODES[0]}: 2 -> 4 (+2)" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "dataflux.cli", "tables", "diff", published.local_path, "--table",
                          "corpus", "--from", "5"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "argument --from: table 'corpus' has versions 0..1, not 5" in bad.stderr


def test_backfill_rebuilds_the_history_from_the_exports(published, tmp_path):
    copy = RunFolder(shutil.copytree(published.local_path, tmp_path / "run"))
    shutil.rmtree(copy.local_path / "corpus_history")
    assert backfill(copy) == [0, 1]
    assert history(copy).select(["corpus_version", "corpus_rows"]).to_pylist() == \
        [{"corpus_version": 0, "corpus_rows": 4}, {"corpus_version": 1, "corpus_rows": 7}]
    assert backfill(copy) == []
