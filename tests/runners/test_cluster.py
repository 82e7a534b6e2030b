"""`--ray-address` that cannot be joined: the CLI fails within a minute with one line, and never prints the
token. (Joining a running cluster with its token is exercised by tests/runners/test_table_pass.py, whose
drivers join the session's cluster, token authentication on.)"""

import socket
import subprocess
import threading
import time

import pytest

from tests.runners.test_table_pass import ROOT, synth

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_an_address_that_cannot_be_joined_fails_within_a_minute_in_one_line(ray_session, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: connection refused
    silent = socket.socket()  # accepts connections and never answers (a head behind a wrong address)
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held = []
    threading.Thread(target=lambda: [held.append(silent.accept()) for _ in range(64)], daemon=True).start()
    config = tmp_path / "run.yaml"
    config.write_text(f"source: {tmp_path / 'src'}\nout: {tmp_path / 'out'}\nrunner: ray\n")
    synth(tmp_path / "src", 1, 1.0)
    cases = {"refused": (refused, {}), "silent": (f"127.0.0.1:{silent.getsockname()[1]}", {}),
             "wrong token": (ray_session.get_runtime_context().gcs_address, {"RAY_AUTH_TOKEN": "0" * 32})}
    procs = {}
    for name, (address, env) in cases.items():
        cmd = [str(ROOT / ".venv/bin/dataflux"), "run", "--config", str(config), "--until", "annotate",
               "--ray-address", address, "--out", str(tmp_path / name.replace(" ", "_"))]
        procs[name] = (time.monotonic(), subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                          text=True, env={**_env(), **env}))
    for name, (start, proc) in procs.items():
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - start
        ours = [line for line in err.splitlines() if line.startswith("dataflux: error:")]
        assert proc.returncode == 2 and len(ours) == 1 and took < 60, (name, took, err[-2000:])
        assert "Ray cluster at" in ours[0] and "0" * 32 not in err + out, name


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
