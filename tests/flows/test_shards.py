"""A sharded flow run (shard_size 2: several task runs per stage) publishes the same corpus, row for
row, as an unsharded one; both are the Prefect flow `synthesize` in its own process against a real
server, with the flow's public parameters only."""

import subprocess
import sys

import pytest

from storage.run_folder import RunFolder
from tests.conftest import ROOT
from tests.faults.harness import small_source, write_config

pytestmark = pytest.mark.slow
FAST_VERIFY = {"answerers": [{"name": "listener_a", "backend": "analyzer", "stack": "signal"},
                             {"name": "listener_b", "backend": "analyzer", "stack": "signal"}],
               "judge": {"backend": "rules"}}


def synthesize(env: dict, config, run_dir, shard_size: int, max_shards: int) -> str:
    code = ("from flows.synthesize import synthesize; "
            f"print('RESULT', synthesize(config={str(config)!r}, run_dir={str(run_dir)!r}, "
            f"shard_size={shard_size}, max_shards={max_shards}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def rows(run: RunFolder, name: str) -> list[dict]:
    return run.table(name).read().to_pylist()  # sorted by key


def test_a_sharded_run_publishes_the_same_corpus_as_an_unsharded_one(local_prefect, tmp_path):
    source = small_source(tmp_path / "src", clips=8)
    config = write_config(tmp_path / "synth.yaml", source, verify=FAST_VERIFY)
    env = {**local_prefect.env(), "PYTHONUNBUFFERED": "1"}
    whole, sharded = RunFolder(tmp_path / "whole"), RunFolder(tmp_path / "sharded")
    synthesize(env, config, whole.uri, shard_size=1000, max_shards=8)
    log = synthesize(env, config, sharded.uri, shard_size=2, max_shards=8)
    assert "8 clips -> 4 shard(s) of at most 2" in log

    info = sharded.read_run_json()
    stages = info["invocations"][-1]["stages"]
    assert stages["annotate"]["task_runs"] == 4 and stages["verify"]["task_runs"] >= 4
    corpus = rows(whole, "corpus")
    assert len(corpus) > 0
    assert rows(sharded, "corpus") == corpus  # row for row, column for column (audio included)
    for name in ("clips", "questions", "verdicts", "kept", "rejects"):
        assert rows(sharded, name) == rows(whole, name), name
