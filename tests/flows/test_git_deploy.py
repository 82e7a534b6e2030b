"""A deployment whose code comes from a git pull step (a local bare repository at a commit) runs
through a process worker started in another folder, on the real Prefect server."""

import subprocess
import sys
import time

import pytest

from storage.run_folder import RunFolder
from tests.conftest import ROOT
from tests.storage.fill import fill

pytestmark = pytest.mark.slow

POOL = "git-test"


def test_a_git_pulled_deployment_runs_on_a_worker_elsewhere(local_prefect, tmp_path):
    from prefect.client.orchestration import get_client

    bare = tmp_path / "dataflux.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--no-local", str(ROOT), str(bare)], check=True, timeout=120)
    commit = subprocess.run(["git", "-C", str(bare), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    url = f"file://{bare}"
    r = subprocess.run([sys.executable, "-m", "dataflux.cli", "deploy", "--only", "dataflux-maintain", "--pool", POOL,
                        "--git-url", url, "--commit", commit], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"code: git {url} @ {commit}" in r.stdout, r.stdout
    run = fill(RunFolder(tmp_path / "run"), commits=4, per_commit=2, tables=["clips"])
    workdir = tmp_path / "elsewhere"  # no checkout here: the worker's flow runs clone one
    workdir.mkdir()
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
                              cwd=workdir, env={**local_prefect.env(), "PREFECT_WORKER_QUERY_SECONDS": "2"},
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("dataflux-maintain/dataflux-maintain")
            try:
                [step] = deployment.pull_steps
                clone = step["prefect.deployments.steps.git_clone"]
                assert (clone["repository"], clone["commit_sha"]) == (url, commit), step
                flow_run = client.create_flow_run_from_deployment(
                    deployment.id, parameters={"run_dir": str(run.local_path)})
                deadline = time.time() + 300
                while time.time() < deadline:
                    state = client.read_flow_run(flow_run.id).state
                    if state is not None and state.is_final():
                        break
                    time.sleep(2)
                assert state.name == "Completed", (state, log.read_text()[-3000:])
            finally:
                client.delete_deployment(deployment.id)  # the shared server: other tests count deployments
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert len(run.table("clips").files()) == 1  # the cloned code compacted the four commits' files
    assert not (workdir / "flows").exists()  # the clone lived in a temporary folder, not beside the worker
