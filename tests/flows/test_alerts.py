"""Alerts reach a real HTTP receiver through Prefect automations on the real server: a failing flow run
(a synthesize run with a bad config), a planted quality regression (a corpus version whose answer
letters are all "A") and a planted evaluation-score regression (a retrained checkpoint whose accuracy
fell beyond its interval), each with the run link and the figures in the message.

Flows run in child processes; the Prefect server's automation services send the notifications."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from dataflux.stages.publish import run_publish
from storage.run_folder import RunFolder
from tests.conftest import ROOT
from tests.storage.fill import rows

pytestmark = pytest.mark.slow


class Receiver:
    """A loopback HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, text: str, timeout_s: float = 90) -> dict:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            for message in self.received:
                if text in message.get("body", "") or text in message.get("subject", ""):
                    return message
            time.sleep(0.5)
        raise AssertionError(f"no alert containing {text!r} within {timeout_s} s; got {self.received}")


@pytest.fixture
def alerts(local_prefect):
    """`dataflux deploy --alerts-webhook URL` (in a child process) pointed at a fresh receiver."""
    from prefect.client.orchestration import get_client

    from flows.alerts import EVAL_REGRESSED, FAILED, REGRESSED, remove_automation

    receiver = Receiver()
    r = subprocess.run([sys.executable, "-m", "dataflux.cli", "deploy", "--only", "dataflux-maintain",
                        "--alerts-webhook", receiver.url, "--alerts-max-minutes", "30"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300, env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    made = [line.split()[1].rstrip(":") for line in r.stdout.splitlines() if line.startswith("automation ")]
    assert sorted(made) == sorted([FAILED, REGRESSED, EVAL_REGRESSED, "dataflux-flow-run-too-long"]), r.stdout
    yield receiver
    with get_client(sync_client=True) as client:  # the shared server: other tests count its deployments
        client.delete_deployment(client.read_deployment_by_name("dataflux-maintain/dataflux-maintain").id)
    for name in made:  # ... and later tests' failing runs must not notify a closed port
        remove_automation(name)
    receiver.server.shutdown()


FAILING = """
import sys
from flows.synthesize import synthesize
state = synthesize(config=sys.argv[1], run_dir=sys.argv[2], return_state=True)
print("RUN", state.state_details.flow_run_id, state.name)
"""

ANNOUNCE = """
import sys
from prefect import flow
from flows.synthesize import announce
from storage.run_folder import RunFolder

@flow(name="dataflux-synthesize")
def go(run_dir: str, before: int):
    return announce(RunFolder(run_dir), before)

print("RESULT", go(sys.argv[1], int(sys.argv[2])))
"""


def test_a_failing_flow_run_is_announced_with_its_link(alerts, local_prefect, tmp_path):
    demo = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    demo["source"] = str(ROOT / "examples" / "demo_audio")
    demo["verify"] = {**demo.get("verify", {}), "batch_size": "many"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(demo))
    r = subprocess.run([sys.executable, "-c", FAILING, str(bad), str(tmp_path / "run")], capture_output=True,
                       text=True, cwd=ROOT, timeout=300, env=local_prefect.env())
    line = next(x for x in r.stdout.splitlines() if x.startswith("RUN "))
    _, run_id, state = line.split()
    assert state == "Failed"
    message = alerts.wait_for(run_id)  # the link names the flow run's id
    assert "dataflux-synthesize" in message["subject"] and "Failed" in message["subject"]
    assert f"/runs/flow-run/{run_id}" in message["body"] and "verify.batch_size" in message["body"]


def test_a_planted_quality_regression_is_announced_with_its_figures(alerts, local_prefect, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write("clips", rows("clips", 0, 24))
    run.write("questions", rows("questions", 0, 24))
    balanced = rows("kept", 0, 8)
    for i, r in enumerate(balanced):
        r["answer"] = "ABCD"[i % 4]
    run.write("kept", balanced)
    run_publish(run)  # corpus v0: letters 2/2/2/2
    skewed = rows("kept", 8, 16)
    for r in skewed:
        r["answer"] = "A"  # the planted regression: every new item's answer is A
    run.write("kept", skewed)
    run_publish(run)  # corpus v1: letters 18/2/2/2
    r = subprocess.run([sys.executable, "-c", ANNOUNCE, str(run.local_path), "0"], capture_output=True,
                       text=True, cwd=ROOT, timeout=300, env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    message = alerts.wait_for("regressed against version 0")
    assert "version 1" in message["subject"] and str(run.local_path) in message["subject"]
    body = message["body"]
    assert "- letters_chi2_p: 1.0 -> " in body and "bound: p >= 0.01" in body, body
    assert '"A": 18' in body and "24 items, 16 new" in body, body
    assert "flow run: http://127.0.0.1:" in body and "/runs/flow-run/" in body, body


EVALUATE = """
import json, sys
from prefect import flow
from flows.evaluate import announce
from model.scoring import compare

@flow(name="eureka-evaluate")
def go(best: dict, new: dict):
    verdict = {**compare(best, new), "best": best["checkpoint"]}
    return announce(new["checkpoint"], new, verdict, best, "report.md", 0.0, "runs/x@3")

print("RESULT " + json.dumps(go(json.loads(sys.argv[1]), json.loads(sys.argv[2]))))
"""


def test_a_planted_evaluation_score_regression_is_announced_with_its_figures(alerts, local_prefect):
    """The retrained checkpoint answers 60% of 200 held-out items where the best answered 80% of 200: the
    drop (0.2) is beyond the 95% interval of the difference (0.0877), so the evaluate flow's event
    reaches the receiver through the `eureka-evaluation-regressed` automation."""
    best = {"checkpoint": "models/train-v2/final", "metrics": {"mcq": {"accuracy": 0.8, "n": 200}}}
    new = {"checkpoint": "models/train-v3/final", "metrics": {"mcq": {"accuracy": 0.6, "n": 200}}}
    r = subprocess.run([sys.executable, "-c", EVALUATE, json.dumps(best), json.dumps(new)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300, env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    found = json.loads(next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))[7:])
    assert found["metric"] == "mcq.accuracy" and found["interval"] == 0.0877, found
    message = alerts.wait_for("models/train-v3/final")
    assert "evaluation score regressed" in message["subject"] and "0.8 -> 0.6" in message["subject"], message
    body = message["body"]
    assert "- mcq.accuracy: 0.8 -> 0.6 (-0.2; bound 0.0877" in body and "models/train-v2/final" in body, body
    assert "200 (best) and 200 (new)" in body and "on runs/x@3" in body, body
    assert "flow run: http://127.0.0.1:" in body and "/runs/flow-run/" in body, body
