"""The `dataflux-maintain` flow on the real Prefect server: it compacts a run folder's tables and shows
what it did as a table artifact; `dataflux deploy` registers it with its schedule.

Flows and the CLI run in child processes (see tests/flows/test_cli_deploy.py for why)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from storage.run_folder import RunFolder
from tests.conftest import ROOT
from tests.storage.fill import fill

pytestmark = pytest.mark.slow

CHILD = """
import json, sys
from flows.maintain import maintain
state = maintain(run_dir=sys.argv[1], retention_hours=168, return_state=True)
print("RESULT " + json.dumps({"run": str(state.state_details.flow_run_id), **state.result()}))
"""


def test_maintain_flow_compacts_and_reports_an_artifact(local_prefect, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    run = fill(RunFolder(tmp_path / "run"), commits=5, per_commit=2, tables=["clips", "annotations"])
    before = run.table("annotations").read()
    r = subprocess.run([sys.executable, "-c", CHILD, str(run.local_path)], capture_output=True, text=True,
                       cwd=ROOT, timeout=300, env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])
    tables = {t["table"]: t for t in result["tables"]}
    assert tables["clips"]["live_files_before"] == 5 and tables["clips"]["live_files_after"] == 1
    assert tables["clips"]["files_deleted"] == 0  # every version is inside the 7-day window
    assert run.table("annotations").read().equals(before)
    with get_client(sync_client=True) as client:
        # this run's artifact: the shared server holds other maintain runs' artifacts under the same key
        wanted = ArtifactFilter(key=ArtifactFilterKey(any_=["dataflux-maintain"]),
                                flow_run_id=ArtifactFilterFlowRunId(any_=[result["run"]]))
        artifacts = client.read_artifacts(artifact_filter=wanted)
    assert len(artifacts) == 1, f"expected this run's one dataflux-maintain artifact, got {len(artifacts)}"
    rows = artifacts[0].data if isinstance(artifacts[0].data, list) else json.loads(artifacts[0].data)
    assert {row["table"]: row["live_files_after"] for row in rows} == {"clips": 1, "annotations": 1}


def test_deploy_registers_the_maintain_deployment_with_its_schedule(local_prefect):
    from prefect.client.orchestration import get_client

    spec = next(d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
                if d["name"] == "dataflux-maintain")
    r = subprocess.run([sys.executable, "-m", "dataflux.cli", "deploy", "--only", "dataflux-maintain"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "PREFECT_API_URL": local_prefect.api_url})
    assert r.returncode == 0, r.stderr[-2000:]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("dataflux-maintain/dataflux-maintain")
        try:
            assert deployment.parameters == spec["parameters"]
            assert [s.schedule.cron for s in deployment.schedules] == [spec["schedules"][0]["cron"]]
        finally:  # the shared server: other tests count the deployments they register
            client.delete_deployment(deployment.id)
