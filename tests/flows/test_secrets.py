"""A flow resolves an API key from a Prefect Secret block by name: the value reaches the environment
variable in the flow run's process and never its parameters, its logs on the server or its console."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

CHILD = """
import os
from prefect import flow, get_run_logger
from flows.secrets import resolve_secrets

@flow(name="secret-probe", log_prints=True)
def probe(secrets: dict):
    resolve_secrets(secrets)
    key = os.environ["DATAFLUX_PROBE_KEY"]
    print("the key is", key)
    get_run_logger().info("again: %s", key)
    return len(key)

state = probe({"DATAFLUX_PROBE_KEY": "dataflux-probe-key"}, return_state=True)
print("RUN", state.state_details.flow_run_id, state.result())
"""


def test_a_secret_block_reaches_the_flow_and_nothing_else(local_prefect):
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    value = "sk-" + os.urandom(12).hex()
    Secret(value=value).save("dataflux-probe-key", overwrite=True)
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={k: v for k, v in local_prefect.env().items() if k != "DATAFLUX_PROBE_KEY"})
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("RUN "))
    _, run_id, length = line.split()
    assert int(length) == len(value)  # the flow had the value
    assert value not in r.stdout + r.stderr
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    messages = "\n".join(log.message for log in logs)
    assert "the key is ***" in messages and "again: ***" in messages, messages
    assert value not in messages and value not in str(run.parameters)
