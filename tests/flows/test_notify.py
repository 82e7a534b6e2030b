"""`dataflux watch serve`, the object-store notification receiver (flows/notify.py), in a child process
against the real local Prefect server: S3- and MinIO-shaped notifications become exactly the
`dataflux.source.updated` events the polling watcher emits; other objects and other events do not;
a missing or wrong token is refused and the token is in no log."""

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

TOKEN_ENV = "DATAFLUX_TEST_NOTIFY_TOKEN"


def _post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _s3_record(bucket: str, key: str, name: str = "ObjectCreated:Put") -> dict:
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
            "s3": {"bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": {"key": key, "size": 10}}}


def _minio(bucket: str, key: str, name: str = "s3:ObjectCreated:Put") -> dict:
    """What MinIO's webhook target POSTs: the S3 record plus EventName and Key ("bucket/key", encoded)."""
    record = _s3_record(bucket, key, name)
    record["eventSource"] = "minio:s3"
    return {"EventName": name, "Key": f"{bucket}/{key}", "Records": [record]}


@pytest.fixture
def receiver(local_prefect, tmp_path):
    from dataflux.llm.server import free_port

    bucket = f"audio-{secrets.token_hex(4)}"  # its own resource id on the shared server
    source, token, port = f"s3://{bucket}/incoming", secrets.token_urlsafe(24), free_port()
    log = tmp_path / "receiver.log"
    proc = subprocess.Popen([sys.executable, "-m", "dataflux.cli", "watch", "serve", "--source", source,
                             "--run-dir", str(tmp_path / "run"), "--port", str(port), "--token-env", TOKEN_ENV],
                            cwd=ROOT, env={**local_prefect.env(), TOKEN_ENV: token}, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                assert json.loads(r.read())["source"] == source
                break
        except OSError:
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
    try:
        yield {"url": url, "bucket": bucket, "source": source, "token": token, "log": log, "proc": proc,
               "run_dir": str(tmp_path / "run")}
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def _events(client, resource: str, count: int, timeout_s: float = 60) -> list:
    """Every dataflux.source.updated event of `resource` once `count` have arrived, after a quiet spell
    long enough for any extra one to have been stored too."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    def read():
        return client.read_events(filter=EventFilter(event=EventNameFilter(name=["dataflux.source.updated"]),
                                                     resource=EventResourceFilter(id=[resource])), limit=50).events

    deadline = time.time() + timeout_s
    while len(events := read()) < count:
        assert time.time() < deadline, f"{len(events)} of {count} event(s) within {timeout_s} s"
        time.sleep(0.5)
    time.sleep(4)  # an extra event would be stored by now
    return sorted(read(), key=lambda e: e.occurred)


def test_s3_and_minio_notifications_become_the_watchers_event_and_only_for_created_objects_under_the_prefix(
        local_prefect, receiver):
    from prefect.client.orchestration import get_client

    from flows.watch import SOURCE_EVENT, resource_id

    url, bucket, token = receiver["url"], receiver["bucket"], receiver["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    # S3: one created object under the prefix, one outside it (other prefix, prefix look-alike, other
    # bucket), a delete under it: one event, one file
    status, answer = _post(url, {"Records": [_s3_record(bucket, "incoming/2026-12-01/a.wav"),
                                             _s3_record(bucket, "other/b.wav"),
                                             _s3_record(bucket, "incomingX/c.wav"),
                                             _s3_record("another-bucket", "incoming/d.wav"),
                                             _s3_record(bucket, "incoming/old.wav", "ObjectRemoved:Delete")]},
                           bearer)
    assert (status, answer) == (200, {"announced": 1})
    # MinIO, token as a query parameter (what an SNS subscription URL carries): a key with a space
    assert _post(f"{url}?token={token}", _minio(bucket, "incoming/new+clip%282%29.wav")) == (200, {"announced": 1})
    # nothing to announce: outside the prefix, and a delete (MinIO's name for it)
    assert _post(url, _minio(bucket, "elsewhere/e.wav"), {"X-DataFlux-Token": token}) == (200, {"announced": 0})
    assert _post(url, _minio(bucket, "incoming/f.wav", "s3:ObjectRemoved:Delete"), bearer) == (200, {"announced": 0})
    # refused: no token, a wrong one (header and query), each for an object that would have been announced
    created = _minio(bucket, "incoming/refused.wav")
    assert _post(url, created)[0] == 401
    assert _post(url, created, {"Authorization": "Bearer not-the-token"})[0] == 403
    assert _post(f"{url}?token=not-the-token", created)[0] == 403
    answered_s = time.perf_counter() - started
    assert answered_s < 5, f"7 notifications took {answered_s:.1f} s to answer"

    with get_client(sync_client=True) as client:
        events = _events(client, resource_id(receiver["source"]), 2)
    assert [e.event for e in events] == [SOURCE_EVENT, SOURCE_EVENT]
    config = str(ROOT / "examples" / "demo.yaml")
    assert [e.payload for e in events] == [
        {"source": receiver["source"], "run_dir": receiver["run_dir"], "config": config, "count": 1,
         "files": [f"s3://{bucket}/incoming/2026-12-01/a.wav"]},
        {"source": receiver["source"], "run_dir": receiver["run_dir"], "config": config, "count": 1,
         "files": [f"s3://{bucket}/incoming/new clip(2).wav"]}]
    assert all(e.resource.get("prefect.resource.name") == receiver["source"] for e in events)

    # the synthesize deployment's trigger (prefect.yaml) covers the event and gets its parameters from it
    import jinja2
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.events.schemas.events import ReceivedEvent

    spec = next(d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
                if d["name"] == "dataflux-synthesize")["triggers"][0]
    trigger = EventTrigger(expect=set(spec["expect"]), match=spec["match"], posture="Reactive", threshold=1)
    for e in events:
        assert trigger.covers(ReceivedEvent.model_validate(e.model_dump(mode="json")))
        parameters = {k: jinja2.Template(v).render(event=e) for k, v in spec["parameters"].items()}
        assert parameters == {"source": receiver["source"], "run_dir": receiver["run_dir"], "config": config}

    proc = receiver["proc"]
    proc.terminate()
    proc.wait(timeout=30)
    log = receiver["log"].read_text()
    assert "emitted dataflux.source.updated" in log and "-> 401" in log and "-> 403" in log, log[-3000:]
    logs = [log] + [p.read_text(errors="replace") for p in Path(local_prefect.log_dir).glob("*.log")]
    assert not any(token in text for text in logs), "the token reached a log"


def test_refuses_a_public_bind_without_a_token_and_a_source_that_is_not_s3(tmp_path):
    def serve(*args, env=None):
        return subprocess.run([sys.executable, "-m", "dataflux.cli", "watch", "serve", "--run-dir", str(tmp_path),
                               *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                              env=env)

    r = serve("--source", "s3://bucket/incoming", "--host", "0.0.0.0")
    assert r.returncode == 2 and "refusing to bind 0.0.0.0 without a token" in r.stderr, r.stderr
    r = serve("--source", str(tmp_path))
    assert r.returncode == 2 and "--source" in r.stderr and "s3://BUCKET" in r.stderr, r.stderr
    r = serve("--source", "s3://bucket/incoming", "--token-env", "DATAFLUX_TEST_UNSET_VARIABLE")
    assert r.returncode == 2 and "DATAFLUX_TEST_UNSET_VARIABLE is not set" in r.stderr, r.stderr

    from flows.notify import NotificationReceiver

    with pytest.raises(ValueError, match="without a token"):
        NotificationReceiver("s3://bucket/incoming", str(tmp_path), "examples/demo.yaml", host="0.0.0.0")
