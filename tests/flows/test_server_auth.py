"""`dataflux server` binds loopback by default and refuses any other address without an auth string;
with one, the Prefect server answers only requests that carry it (basic auth)."""

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_a_non_loopback_bind_without_an_auth_string_is_refused():
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_API_AUTH_STRING"}
    r = subprocess.run([sys.executable, "-m", "dataflux.cli", "server", "--host", "0.0.0.0", "--no-worker"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert r.returncode == 2
    assert "argument --host: refusing to bind 0.0.0.0 without an auth string" in r.stderr, r.stderr
    assert "PREFECT_SERVER_API_AUTH_STRING=user:password" in r.stderr


def test_with_an_auth_string_the_server_wants_it(tmp_path):
    from flows.server import LocalPrefect

    secret = "ops:" + base64.b16encode(os.urandom(8)).decode()
    with pytest.raises(ValueError, match="refusing to bind the Prefect server to 0.0.0.0"):
        LocalPrefect(home=tmp_path, host="0.0.0.0", worker=False)
    with LocalPrefect(home=tmp_path / "home", host="0.0.0.0", auth_string=secret, worker=False) as server:
        url = f"{server.api_url}/flows/filter"
        body = json.dumps({}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": "application/json"}), timeout=10)
        assert refused.value.code == 401
        headers = {"Content-Type": "application/json", **server.auth_header()}
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10) as ok:
            assert ok.status == 200
        child = subprocess.run([sys.executable, "-c", "from prefect.client.orchestration import get_client\n"
                                "with get_client(sync_client=True) as c: print('FLOWS', len(c.read_flows()))"],
                               capture_output=True, text=True, timeout=120, env=server.env())
        assert "FLOWS 0" in child.stdout, child.stderr[-2000:]  # a client with PREFECT_API_AUTH_STRING gets in
        logs = "".join(p.read_text(errors="replace") for p in server.log_dir.glob("*.log"))
        assert secret not in logs
