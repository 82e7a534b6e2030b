"""An API key set in the environment appears nowhere after a run that used it; servers bind to
loopback; no reader of corpus, cache or checkpoint data unpickles."""

import ast
import subprocess
import sys

import pytest
import yaml

from tests.conftest import DEMO_AUDIO, ROOT
from tests.openai_double import OpenAIDouble, completion

KEY = "sk-test-SECRET-4f9c2d7e1b"


@pytest.mark.slow
def test_an_api_key_leaves_no_trace(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("001_en_male_low_slow.flac", "038_tone_440hz.ogg"):
        (src / name).write_bytes((DEMO_AUDIO / name).read_bytes())
    seen_auth = []

    def reply(body):
        return 200, completion("I hear it.\nAnswer: A"), {}

    with OpenAIDouble(reply) as double:
        config = tmp_path / "c.yaml"
        endpoint = {"base_url": double.base_url, "model": "omni", "api_key_env": "DATAFLUX_TEST_KEY", "max_retries": 0}
        config.write_text(yaml.safe_dump({
            "source": str(src), "out": str(tmp_path / "run"),
            "annotate": {"asr": {"model": "tiny.en", "language": "en"}},
            "verify": {"answerers": [{"name": "omni", "backend": "openai", "endpoint": endpoint},
                                     {"name": "b", "backend": "analyzer", "stack": "signal"}]}}))
        env = {"DATAFLUX_TEST_KEY": KEY, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        r = subprocess.run([sys.executable, "-m", "dataflux.cli", "run", "--config", str(config), "--no-progress"],
                           capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
        seen_auth = [{k.lower(): v for k, v in h.items()}.get("authorization", "") for h in double.headers]
    assert r.returncode == 0, r.stderr[-2000:]
    assert seen_auth and all(KEY in h for h in seen_auth)  # the key was really used...
    assert KEY not in r.stdout and KEY not in r.stderr  # ...and is nowhere else
    leaks = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaks, leaks


def test_servers_bind_to_loopback():
    from flows.server import LocalPrefect

    env = LocalPrefect(home="/tmp/unused", port=1234).env()
    assert env["PREFECT_SERVER_API_HOST"] == "127.0.0.1" and env["PREFECT_API_URL"].startswith("http://127.0.0.1:")
    server_src = (ROOT / "dataflux" / "llm" / "server.py").read_text()
    assert '"127.0.0.1"' in server_src and "0.0.0.0" not in server_src


def test_no_reader_unpickles():
    """No pickle.load(s), and every torch.load passes weights_only=True."""
    offenders = []
    for package in ("dataflux", "storage", "verifiers", "model", "flows"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    owner = getattr(node.func.value, "id", "")
                    if owner in ("pickle", "cloudpickle", "dill") and node.func.attr in ("load", "loads"):
                        offenders.append(f"{path}:{node.lineno}")
                    if owner == "torch" and node.func.attr == "load":
                        kw = {k.arg: k.value for k in node.keywords}
                        if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                            offenders.append(f"{path}:{node.lineno}")
    assert not offenders, offenders


