"""The synthesize flow on a real Prefect server with an API key in the flow's environment, and an
answerer endpoint that fails some requests with the key echoed in its error body (a hostile or
careless server): the key reaches the endpoint's Authorization header and nothing else - not the
flow's output, not a table (rejects' details included), not the task results, not the Prefect
server's database (logs, artifacts, states) or its log files."""

import hashlib

import pytest

from tests.faults.harness import FlowProcess, small_source, write_config
from tests.openai_double import OpenAIDouble, completion

pytestmark = pytest.mark.slow
KEY = "sk-flow-SECRET-93b1e07c55"


def leaks(folder) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def test_an_api_key_leaves_no_trace_in_a_flow_run(tmp_path):
    from flows.server import LocalPrefect

    def reply(body):
        text = str(body["messages"][-1]["content"])
        if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3 == 0:
            return 500, {"error": {"message": f"upstream refused Authorization: Bearer {KEY}"}}, {}
        return 200, completion("I hear it.\nAnswer: A"), {}

    source = small_source(tmp_path / "src", clips=3)
    with OpenAIDouble(reply) as double, LocalPrefect(home=tmp_path / "prefect", worker=False) as server:
        endpoint = {"base_url": double.base_url, "model": "omni", "api_key_env": "DATAFLUX_TEST_KEY",
                    "max_retries": 0}
        config = write_config(tmp_path / "c.yaml", source, filter={"max_rounds": 0}, verify={
            "answerers": [{"name": "omni", "backend": "openai", "endpoint": endpoint},
                          {"name": "b", "backend": "analyzer", "stack": "signal"}]})
        env = {**server.env(), "DATAFLUX_TEST_KEY": KEY, "PYTHONUNBUFFERED": "1",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        flow = FlowProcess(config, tmp_path / "run", env)
        assert flow.finish(600) == 0, flow.output()[-3000:]
        auth = [{k.lower(): v for k, v in h.items()}.get("authorization", "") for h in double.headers]
    assert auth and all(h == f"Bearer {KEY}" for h in auth)  # the key was really used...
    from storage.run_folder import RunFolder

    failed = RunFolder(tmp_path / "run").rejects("verify").to_pylist()
    assert failed and all(r["reason_code"] == "answer_failed" for r in failed)  # ...and really echoed back
    assert KEY not in flow.output()
    assert not leaks(tmp_path / "run"), leaks(tmp_path / "run")
    assert not leaks(tmp_path / "prefect"), leaks(tmp_path / "prefect")
