"""Runs triggered by new audio, on the real Prefect server with a real process worker: the watcher
emits `dataflux.source.updated`, the `dataflux-synthesize` deployment's trigger starts a run, and that
run processes exactly the files the run folder had not accounted for.

Flows and the CLI run in child processes (see tests/flows/test_cli_deploy.py for why)."""

import json
import shutil
import subprocess
import sys
import time

import pytest

from storage.run_folder import RunFolder
from tests.conftest import DEMO_AUDIO, ROOT

pytestmark = pytest.mark.slow

POOL = "watch-test"
WATCH = """
import json, sys
from flows.watch import watch
print("RESULT " + json.dumps(watch(source=sys.argv[1], run_dir=sys.argv[2], config=sys.argv[3])))
"""


def _watch(local_prefect, source, run_dir) -> dict:
    r = subprocess.run([sys.executable, "-c", WATCH, str(source), str(run_dir), str(ROOT / "examples" / "demo.yaml")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300, env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))[7:])


def _wait_for_runs(client, deployment_id, count: int, timeout_s: float = 400) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
        if len(runs) >= count and all(r.state is not None and r.state.is_final() for r in runs):
            return sorted(runs, key=lambda r: r.created)
        time.sleep(2)
    raise AssertionError(f"{count} triggered run(s) did not finish within {timeout_s} s: "
                         f"{[(r.name, r.state.name if r.state else None) for r in runs]}")


@pytest.fixture(scope="module")
def worker(local_prefect, tmp_path_factory):
    """The synthesize and watch deployments on their own work pool, served by a process worker started in
    another folder (the deployment says where the code is); both deployments are removed afterwards."""
    from prefect.client.orchestration import get_client

    r = subprocess.run([sys.executable, "-m", "dataflux.cli", "deploy", "--only", "dataflux-synthesize",
                        "dataflux-watch", "--pool", POOL], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    workdir = tmp_path_factory.mktemp("worker")
    log = workdir / "worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
                            cwd=workdir, env={**local_prefect.env(), "PREFECT_WORKER_QUERY_SECONDS": "2"},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield log
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        with get_client(sync_client=True) as client:  # the shared server: other tests count deployments
            for name in ("dataflux-synthesize/dataflux-synthesize", "dataflux-watch/dataflux-watch"):
                client.delete_deployment(client.read_deployment_by_name(name).id)


def test_new_files_in_a_watched_folder_start_a_run_of_exactly_those_files(local_prefect, worker, tmp_path):
    from prefect.client.orchestration import get_client

    source, run_dir = tmp_path / "incoming", tmp_path / "run"
    source.mkdir()
    demo = sorted(p for p in DEMO_AUDIO.iterdir() if p.suffix == ".wav")
    first, later = demo[:1], demo[1:3]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("dataflux-synthesize/dataflux-synthesize")
        for f in first:
            shutil.copy(f, source / f.name)
        seen = _watch(local_prefect, source, run_dir)
        assert [p.split("/")[-1] for p in seen["announce"]] == [f.name for f in first]
        runs = _wait_for_runs(client, deployment.id, 1)
        assert runs[0].state.name == "Completed", (runs[0].state, worker.read_text()[-3000:])
        run = RunFolder(run_dir)
        assert set(run.table("clips").read(columns=["source_uri"])["source_uri"].to_pylist()) == \
            {str(source / f.name) for f in first}

        for f in later:  # new audio arrives
            shutil.copy(f, source / f.name)
        seen = _watch(local_prefect, source, run_dir)
        assert sorted(p.split("/")[-1] for p in seen["announce"]) == [f.name for f in later]
        runs = _wait_for_runs(client, deployment.id, 2)
        assert runs[1].state.name == "Completed", worker.read_text()[-3000:]
        assert runs[1].parameters["source"] == str(source)
        info = run.read_run_json()
        last = info["invocations"][-1]
        assert last["command"] == "flow:dataflux-synthesize" and last["status"] == "completed"
        ingest = last["stages"]["ingest"]
        assert ingest["rows_in"] == len(later), ingest  # exactly the new files went in
        clips = run.table("clips").read(columns=["clip_id", "source_uri"]).to_pylist()
        new_clips = {c["clip_id"] for c in clips if c["source_uri"] in {str(source / f.name) for f in later}}
        assert new_clips and last["stages"]["annotate"]["rows_in"] == len(new_clips)
        assert _watch(local_prefect, source, run_dir)["announce"] == []  # nothing new: no event


BACKFILL = """
import json, sys
from flows.watch import backfill
print("RESULT " + json.dumps(backfill(source=sys.argv[1], run_dir=sys.argv[2], config=sys.argv[3], start=sys.argv[4],
                                      end=sys.argv[5], max_concurrent=2, deployment="dataflux-watch/dataflux-watch")))
"""


def test_backfill_runs_one_flow_run_per_partition_at_most_two_at_a_time(local_prefect, worker, tmp_path):
    """The per-partition deployment here is the cheap dataflux-watch (same parameters as synthesize): what
    is under test is the partition choice, one run per partition and the bound on concurrent runs."""
    from prefect.client.orchestration import get_client

    source = tmp_path / "audio"
    days = ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]
    demo = sorted(p for p in DEMO_AUDIO.iterdir() if p.suffix == ".wav")
    for day, f in zip(days, demo):
        (source / day).mkdir(parents=True)
        shutil.copy(f, source / day / f.name)
    r = subprocess.run([sys.executable, "-c", BACKFILL, str(source), str(tmp_path / "runs"),
                        str(ROOT / "examples" / "demo.yaml"), "2026-11-29", "2026-12-01"],
                       capture_output=True, text=True, cwd=ROOT, timeout=400, env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:] + worker.read_text()[-2000:]
    done = json.loads(next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))[7:])
    assert [d["partition"] for d in done] == days[1:4] and {d["state"] for d in done} == {"Completed"}
    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(d["flow_run_id"]) for d in done]
    for d, run in zip(done, runs):  # each partition into its own run folder
        assert run.parameters["source"] == str(source / d["partition"])
        assert run.parameters["run_dir"] == str(tmp_path / "runs" / d["partition"])
    spans = [(run.start_time, run.end_time) for run in runs]
    overlapping = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlapping <= 2, spans
