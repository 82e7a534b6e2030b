"""The servers a run depends on go away mid-run and come back.

- The local LLM server (llama.cpp, the bundled SmolLM2, as the verify judge) is SIGKILLed while it is
  answering and restarted on the same port a few seconds later: the run waits, retries and completes,
  and no question is rejected for the outage.
- The Prefect server is stopped while the synthesize flow runs and started again (same database, same
  port): the flow run ends in a final state (not stuck in Running), and a re-run completes without
  redoing the shards that had finished (their tasks are Cached, their tables get no new version)."""

import sqlite3
import subprocess
import sys
import time

import pytest

from storage.run_folder import RunFolder
from tests.conftest import ROOT
from tests.faults.harness import FlowProcess, small_source, write_config

pytestmark = pytest.mark.slow
SIGNAL_LISTENERS = [{"name": "listener_a", "backend": "analyzer", "stack": "signal"},
                    {"name": "listener_b", "backend": "analyzer", "stack": "signal"}]


def stored_answers(run_dir) -> int:
    try:
        with sqlite3.connect(run_dir / "llm_cache.sqlite", timeout=1) as db:
            return db.execute("SELECT count(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_llm_server_killed_mid_run_and_restarted(tmp_path):
    pytest.importorskip("llama_cpp")
    from dataflux.llm.server import MODEL_ALIAS, LocalLLMServer, free_port

    port = free_port()
    source = small_source(tmp_path / "src", clips=4)
    endpoint = {"base_url": f"http://127.0.0.1:{port}/v1", "model": MODEL_ALIAS, "flavor": "llama.cpp",
                "concurrency": 2}
    config = write_config(tmp_path / "judge.yaml", source, filter={"max_rounds": 0},
                          verify={"answerers": SIGNAL_LISTENERS, "judge": {"backend": "local", "endpoint": endpoint}})
    run_dir = tmp_path / "run"
    server = LocalLLMServer(port=port, threads=2).start()
    run = subprocess.Popen([sys.executable, "-m", "dataflux.cli", "run", "--config", str(config), "--out",
                            str(run_dir), "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 400
        while stored_answers(run_dir) < 2 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert run.poll() is None, "the run ended before the server could be killed"
        done_before = stored_answers(run_dir)
        server.process.kill()  # SIGKILL: requests in flight are cut off, new ones are refused
        server.process.wait()
        time.sleep(5)
        assert run.poll() is None, "the run gave up while the server was down"
        server = LocalLLMServer(port=port, threads=2).start()
        out, err = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
        server.stop()
    assert run.returncode == 0, err[-3000:]
    assert stored_answers(run_dir) > done_before
    rf = RunFolder(run_dir)
    questions = rf.table("questions").num_rows()
    rejects = rf.rejects("verify").to_pylist()
    assert not [r for r in rejects if "unreachable" in (r["detail"] or "") or "Connection" in (r["detail"] or "")]
    assert rf.table("verdicts").num_rows() + len(rejects) == questions > 0


def task_states(client, flow_run_id) -> dict[str, list[str]]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    states: dict[str, list[str]] = {}
    for t in runs:
        states.setdefault(t.name, []).append(t.state.name if t.state else "none")
    return states


def flow_runs(client) -> list:
    from prefect.client.schemas.sorting import FlowRunSort

    return client.read_flow_runs(sort=FlowRunSort.START_TIME_ASC)


@pytest.mark.parametrize("outage", ["short", "until-the-flow-ends"])
def test_prefect_server_restarted_mid_run(tmp_path, outage):
    """A short outage (5 s) is ridden out by Prefect's client retries and the flow completes. When the
    server stays away until the flow process has ended, the flow run's last states never reach it; if
    it is left non-final, the re-run (taking the run folder's lock) marks it Crashed."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import LocalPrefect, free_port

    home, port = tmp_path / "prefect", free_port()
    source = small_source(tmp_path / "src")
    config = write_config(tmp_path / "flow.yaml", source, filter={"max_rounds": 0},
                          verify={"answerers": SIGNAL_LISTENERS, "judge": {"backend": "rules"}})
    run_dir = tmp_path / "run"
    server = LocalPrefect(home=home, port=port, worker=False).start()
    env = {**server.env(), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONUNBUFFERED": "1"}
    # While the API is away, Prefect's client retries each call 5 times over ~1 min; one retry keeps the
    # long outage's test short (the flow process gives up within seconds, as it would after minutes).
    first_env = env if outage == "short" else {**env, "PREFECT_CLIENT_MAX_RETRIES": "1"}
    try:
        flow = FlowProcess(config, run_dir, first_env)
        assert flow.wait_for(r"Task run 'annotate\[.*Finished in state Completed", 300), flow.output()[-3000:]
        server.stop()  # the API goes away while the flow is between and inside its tasks
        if outage == "short":
            time.sleep(5)
            server = LocalPrefect(home=home, port=port, worker=False).start()
            code = flow.finish(600)
        else:
            code = flow.finish(600)
            server = LocalPrefect(home=home, port=port, worker=False).start()
        output = flow.output()
        annotations_version = RunFolder(run_dir).table("annotations").version()
        with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
            [first] = flow_runs(client)
            left = first.state.name
            if outage == "short":
                assert code == 0 and first.state.is_completed(), (code, left, output[-3000:])

            rerun = FlowProcess(config, run_dir, env)
            assert rerun.finish(600) == 0, rerun.output()[-3000:]
            first, second = flow_runs(client)
            assert first.state.is_final(), f"the first flow run is left {first.state.name}"
            if left in ("Running", "Pending", "Scheduled"):  # the re-run found it stale and settled it
                assert first.state.name == "Crashed" and "ended without reporting" in first.state.message
            assert second.state.is_completed()
            states = task_states(client, second.id)
            print(f"outage {outage}: the flow process exited {code}; its flow run was {left}, then {first.state.name}")
        # the shards finished before the restart are not done again
        assert states["annotate[0/1]"] == ["Cached"], states
        assert RunFolder(run_dir).table("annotations").version() == annotations_version
        assert RunFolder(run_dir).table("corpus").num_rows() > 0
    finally:
        server.stop()
