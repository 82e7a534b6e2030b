"""SIGKILL the synthesize flow at a random point in each stage, five trials, then let it finish.

Each trial starts from an empty run folder and kills the flow process (and its children) once in every
stage, in order: ingest, annotate, generate, verify, filter, publish; the moment is drawn uniformly over
the first third of that stage's duration in an uninterrupted run, counted from the stage's 'starting' log
line (a third: a run up to three times as fast as the reference still dies inside the stage, so an early
finish does not move the kill into the next stage; the reference is the first, cold run, and a warm
ingest has been measured 2.4 times as fast). A kill counts only if the stage's task had not logged its
'Finished' line; every trial must kill in all six stages. After the sixth kill a last run completes.
Then the corpus equals the uninterrupted run's row for row, every input is a clip or one reject, and no
LLM request whose answer had been stored before a kill is sent again. The audio answerer is an HTTP
stand-in (no audio LLM runs offline)."""

import random
import sqlite3

import pytest

from storage.run_folder import RunFolder
from tests.conftest import assert_accounted_once
from tests.faults.harness import (STAGES, FlowProcess, corpus_rows, finished_at, small_source, stage_durations,
                                  write_config)
from tests.verifiers.answer_double import audio_answer
from tests.verifiers.test_kill_during_verify import key_of

pytestmark = pytest.mark.slow
TRIALS = 5
KILL_WITHIN = 1 / 3  # of the stage's uninterrupted duration: see the module docstring


def verify_section(base_url: str) -> dict:
    return {"answerers": [{"name": "omni", "backend": "openai",
                           "endpoint": {"base_url": base_url, "model": "omni", "concurrency": 2}},
                          {"name": "listener_b", "backend": "analyzer", "stack": "signal"}],
            "judge": {"backend": "rules"}, "batch_size": 4}


def stored(run_dir) -> set[str]:
    path = run_dir / "llm_cache.sqlite"
    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT key FROM responses")}


def flow_run_states(api_url: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return [r.state.name for r in client.read_flow_runs(limit=200)]


def test_sigkill_in_every_stage_five_trials(tmp_path, flow_env, prefect_server):
    source = small_source(tmp_path / "src")
    log: list[dict] = []
    with audio_answer(delay_s=0.05, log=log) as double:
        config = write_config(tmp_path / "faults.yaml", source, verify=verify_section(double.base_url),
                              filter={"max_rounds": 1})
        reference = tmp_path / "reference"
        flow = FlowProcess(config, reference, flow_env)
        assert flow.finish() == 0, flow.output()[-3000:]
        want = corpus_rows(reference)
        assert want, "the uninterrupted run published nothing"
        durations = stage_durations(flow.lines)
        assert set(durations) == set(STAGES), durations

        for trial in range(TRIALS):
            rng = random.Random(trial)
            run_dir = tmp_path / f"trial{trial}"
            killed_in, missed = [], []
            for stage in STAGES:
                before = stored(run_dir)
                log.clear()
                flow = FlowProcess(config, run_dir, flow_env)
                started = flow.wait_for(rf"Task run '{stage}\[.*starting shard", timeout_s=300)
                if started is None:  # the stage had nothing left to do: an earlier kill came after it finished
                    missed.append(f"{stage}: never started; the run ended first")
                    assert flow.finish() == 0, flow.output()[-3000:]
                    break
                delay = rng.uniform(0, KILL_WITHIN * durations[stage])
                flow.sleep_until(started + delay)
                flow.kill()
                done = finished_at(flow.lines, stage, started)  # every line the killed process wrote is read
                if done is not None:
                    missed.append(f"{stage}: finished {done - started:.2f} s after it started, before the kill at "
                                  f"{delay:.2f} s (uninterrupted: {durations[stage]:.2f} s)")
                else:
                    killed_in.append((stage, round(delay, 2)))
                resent = {key_of(body) for body in log} & before
                assert not resent, f"trial {trial}: {len(resent)} stored LLM answers were asked again ({stage})"
            before = stored(run_dir)
            log.clear()
            flow = FlowProcess(config, run_dir, flow_env)
            assert flow.finish() == 0, flow.output()[-3000:]
            assert not {key_of(body) for body in log} & before, f"trial {trial}: a stored answer was asked again"

            got = corpus_rows(run_dir)
            assert [r["question_id"] for r in got] == [r["question_id"] for r in want], (trial, killed_in)
            for a, b in zip(got, want):
                assert a == b, (trial, killed_in, {k: (a[k], b[k]) for k in a if a[k] != b[k]})
            run = RunFolder(run_dir)
            assert_accounted_once(run, source)
            assert run.counts() == RunFolder(reference).counts(), (trial, killed_in)
            print(f"trial {trial}: killed in {killed_in}")
            assert not missed and [stage for stage, _ in killed_in] == list(STAGES), (trial, missed, killed_in)
    # every killed flow run was marked Crashed by the run that next took its run folder
    states = flow_run_states(prefect_server.api_url)
    assert states.count("Crashed") >= TRIALS and set(states) <= {"Completed", "Crashed"}, states
