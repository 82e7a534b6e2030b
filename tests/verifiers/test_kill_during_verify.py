"""SIGKILL during verification, then a re-run: the same corpus as an uninterrupted run, and no LLM
request that had finished is sent again (the audio answerer is an HTTP stand-in: no audio LLM runs
offline here)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from storage.run_folder import RunFolder
from tests.conftest import DEMO_AUDIO, copy_run
from tests.verifiers.answer_double import audio_answer

pytestmark = pytest.mark.slow


def config(tmp_path, run_dir, base_url) -> str:
    path = tmp_path / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump({
        "source": str(DEMO_AUDIO), "out": str(run_dir),
        "generate": {"writer": "template"},
        "verify": {"answerers": [{"name": "omni", "backend": "openai",
                                  "endpoint": {"base_url": base_url, "model": "omni", "concurrency": 2}},
                                 {"name": "listener_b", "backend": "analyzer", "stack": "signal"}],
                   "judge": {"backend": "rules"}, "batch_size": 8},
        "filter": {"max_rounds": 0}}))
    return str(path)


def start(cfg):
    return subprocess.Popen([sys.executable, "-m", "dataflux.cli", "run", "--config", cfg, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cached(run_dir) -> set[str]:
    with sqlite3.connect(run_dir / "llm_cache.sqlite") as db:
        return {row[0] for row in db.execute("SELECT key FROM responses")}


def key_of(body: dict) -> str:
    """The client's cache key for a request the stand-in received."""
    from dataflux.llm.cache import request_key
    from verifiers.answerers import ANSWERER_PROMPT_VERSION

    params = {k: body[k] for k in ("temperature", "max_tokens")}
    return request_key(body["model"], ANSWERER_PROMPT_VERSION, params, None, body["messages"])


def corpus(run_dir):
    rows = RunFolder(run_dir).table("corpus").read().to_pylist()
    return sorted(rows, key=lambda r: r["question_id"])


def test_sigkill_during_verify_then_rerun(demo_annotated, tmp_path):
    reference, killed = (copy_run(demo_annotated[0], tmp_path / name) for name in ("reference", "killed"))
    log = []
    with audio_answer(delay_s=0.05, log=log) as double:
        proc = start(config(tmp_path, reference, double.base_url))
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        uninterrupted = {key_of(b) for b in log}
        sent_uninterrupted = len(uninterrupted)
        assert sent_uninterrupted > 40

        log.clear()
        proc = start(config(tmp_path, killed, double.base_url))
        deadline = time.time() + 300
        while len(log) < 30 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(log) < sent_uninterrupted, "the run finished before it could be killed"
        finished = cached(killed)
        assert len(finished) >= 16  # at least two batches' answers were back before the kill
        assert finished <= {key_of(b) for b in log}

        log.clear()
        proc = start(config(tmp_path, killed, double.base_url))
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        resent = {key_of(b) for b in log}
        assert not resent & finished  # no finished request is sent again
        assert resent == uninterrupted - finished  # everything unfinished is asked again, nothing else

    got, want = corpus(killed), corpus(reference)
    assert want and [r["question_id"] for r in got] == [r["question_id"] for r in want]
    for a, b in zip(got, want):
        assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}
