"""`dataflux deploy` against a real Prefect server registers what prefect.yaml declares.

The CLI runs in a child process: in-process, Prefect would bind its console logging to this test's
captured stream, which is closed by the time later tests log."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_deploy_registers_the_named_deployment_and_its_work_pool(local_prefect):
    from prefect.client.orchestration import get_client

    declared = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    r = subprocess.run([sys.executable, "-m", "dataflux.cli", "deploy", "--only", "eureka-evaluate"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "PREFECT_API_URL": local_prefect.api_url})
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith("deployed ")]  # Prefect prints a table too
    assert len(lines) == 1, lines
    spec = declared["eureka-evaluate"]
    m = re.fullmatch(rf"deployed ([\w-]+)/eureka-evaluate \(([0-9a-f-]{{36}})\): {len(spec.get('schedules', []))} "
                     rf"schedule\(s\), {len(spec.get('triggers', []))} trigger\(s\)", lines[0])
    assert m, lines
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(m.group(2))
        assert deployment.name == "eureka-evaluate" and deployment.work_pool_name == "dataflux"
        assert deployment.parameters == spec["parameters"]
        names = {d.name for d in client.read_deployments()}
        assert names == {"eureka-evaluate"}  # --only: nothing else registered
        assert client.read_work_pool("dataflux").type == "process"
