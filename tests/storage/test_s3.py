"""Run folders and inputs on a real S3 server (moto's server mode on loopback; credentials and endpoint
only through the AWS_* environment variables): ingest from s3://, the pipeline into an s3:// run folder,
a re-run, time travel, exports, corpus reading for training, the run-folder lock, and commits that meet
throttling (503 SlowDown) or a dropped connection (a fault proxy in front of the server).

The pipeline runs in a child process (the CLI), the cheapest chain: template questions, two signal
analyzers as listeners, the rules judge."""

import json
import os
import subprocess
import sys
import textwrap
import time

import fsspec
import pyarrow as pa
import pytest
import yaml

from storage.run_folder import RunFolder, RunFolderBusy, StoreLock
from storage.tables import StorageError, Table
from tests.conftest import DEMO_AUDIO, ROOT
from tests.s3 import FaultProxy, s3_server  # noqa: F401

FILES = ["001_en_male_low_slow.flac", "016_en_female_high_slow.flac", "038_tone_440hz.ogg"]
CHEAPEST = {
    "runner": "local",
    "annotate": {"skip": ["asr", "speakers", "dnsmos"], "threads": 1},
    "generate": {"writer": "template", "max_nodes_per_clip": 2},
    "verify": {"answerers": [{"name": "listener_a", "backend": "analyzer", "stack": "signal"},
                             {"name": "listener_b", "backend": "analyzer", "stack": "signal"}],
               "judge": {"backend": "rules"}},
    "filter": {"max_rounds": 1},
}
SCHEMA = pa.schema([("k", pa.string()), ("v", pa.int64())])
pytestmark = pytest.mark.slow  # a real server, child processes, the pipeline: ~2 min in all


def dataflux(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "dataflux.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def s3_run(s3_server, tmp_path_factory):  # noqa: F811
    """The demo clips uploaded to s3://, then the whole cheapest pipeline into an s3:// run folder."""
    bucket = s3_server.bucket()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    for name in FILES:
        fs.pipe(f"{bucket}/src/{name}", (DEMO_AUDIO / name).read_bytes())
    cfg = tmp_path_factory.mktemp("s3cfg") / "config.yaml"
    cfg.write_text(yaml.safe_dump({**CHEAPEST, "source": f"{bucket}/src", "out": f"{bucket}/run"}))
    first = dataflux("run", "--config", str(cfg), "--no-progress")
    assert first.returncode == 0, first.stderr[-3000:]
    return bucket, cfg, first


def test_pipeline_on_s3_then_rerun_does_nothing(s3_run):
    bucket, cfg, _ = s3_run
    run = RunFolder(f"{bucket}/run")
    info = run.read_run_json()
    stages = info["invocations"][-1]["stages"]
    assert info["invocations"][-1]["status"] == "completed"
    assert stages["ingest"]["rows_out"] == 3 and stages["annotate"]["rows_out"] == 3
    assert info["counts"]["clips"] == 3 and info["counts"]["questions"] > 0
    assert {"clips", "annotations", "questions", "corpus"} <= set(run.tables())
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    assert not fs.exists(f"{bucket}/run/.lock")  # released at the end
    versions = {name: run.table(name).version() for name in run.tables()}
    again = dataflux("run", "--config", str(cfg), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    info = run.read_run_json()
    assert len(info["invocations"]) == 2
    assert all(s["rows_in"] == 0 for s in info["invocations"][-1]["stages"].values())
    assert {name: run.table(name).version() for name in run.tables()} == versions  # nothing committed


def test_time_travel_export_and_training_read_from_s3(s3_run, tmp_path):
    bucket, _, _ = s3_run
    run_dir = f"{bucket}/run"
    shown = dataflux("tables", "show", run_dir, "--table", "clips", "--version", "0")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "clips version 0" in shown.stdout
    corpus = RunFolder(run_dir).table("corpus")
    exported = dataflux("export", run_dir, "--table", "corpus", "--format", "hf",
                        "--out", str(tmp_path / "hf"), "--version", str(corpus.version()))
    assert exported.returncode == 0, exported.stderr[-2000:]
    info = json.loads((tmp_path / "hf" / "export.json").read_text())
    assert info["rows"] == corpus.num_rows() > 0 and info["run"] == run_dir

    from model.data import CorpusSpec, read_corpus

    samples = read_corpus(CorpusSpec(run_dir=run_dir, version=corpus.version()), "train", 0.0)
    assert len(samples) == corpus.num_rows() and all(len(s.audio) > 0 for s in samples)


def test_a_second_run_into_an_s3_folder_is_refused_and_a_dead_holders_lease_runs_out(s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.bucket()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({**CHEAPEST, "source": str(DEMO_AUDIO), "out": f"{bucket}/run"}))
    with RunFolder(f"{bucket}/run").lock({"command": "holder-test"}):
        refused = dataflux("run", "--config", str(cfg), "--until", "ingest", "--no-progress")
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "is in use by another run" in refused.stderr and "holder-test" in refused.stderr
        with pytest.raises(RunFolderBusy):
            with RunFolder(f"{bucket}/run").lock({"command": "second"}):
                pass
    assert RunFolder(f"{bucket}/run").tables() == []  # the refused run started nothing
    # A holder that dies leaves its lock object; once its lease has run out the next run takes it over.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys
        from storage.run_folder import StoreLock
        with StoreLock(sys.argv[1], lease_s=2).hold({"command": "dies"}):
            print("locked", flush=True)
            os._exit(9)
        """), f"{bucket}/run/.lock"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.wait()
    with pytest.raises(RunFolderBusy, match="lease runs out"):
        with StoreLock(f"{bucket}/run/.lock", lease_s=2).hold({"command": "too early"}):
            pass
    time.sleep(3.5)
    with StoreLock(f"{bucket}/run/.lock", lease_s=2).hold({"command": "after"}) as previous:
        assert previous["command"] == "dies" and previous["pid"] == holder.pid


def test_a_lock_holder_renews_its_lease(s3_server):  # noqa: F811
    bucket = s3_server.bucket()
    with StoreLock(f"{bucket}/.lock", lease_s=1.2).hold({"command": "long"}):
        time.sleep(2.5)  # twice the lease: renewed meanwhile, so still held
        with pytest.raises(RunFolderBusy):
            with StoreLock(f"{bucket}/.lock", lease_s=1.2).hold({"command": "second"}):
                pass


WRITER = textwrap.dedent("""
    import json, sys
    import pyarrow as pa
    from storage.tables import Table
    t = Table(sys.argv[1], pa.schema([("k", pa.string()), ("v", pa.int64())]), ("k",))
    out = {}
    try:
        out["upsert"] = t.upsert(pa.table({"k": ["b", "c"], "v": [2, 3]}))
        out["append"] = t.append([pa.table({"k": ["d"], "v": [4]})])
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
""")


def write_through(proxy: FaultProxy, table_uri: str) -> dict:
    """Upsert two rows then append one, in a child process whose S3 endpoint is the fault proxy."""
    done = subprocess.run([sys.executable, "-c", WRITER, table_uri], cwd=ROOT, capture_output=True, text=True,
                          timeout=240, env={**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def commits(proxy: FaultProxy) -> list[str]:
    return [action for method, path, action in proxy.seen if method == "PUT" and "/_delta_log/" in path]


def test_throttled_commits_leave_no_half_version_and_the_rerun_completes(s3_server):  # noqa: F811
    table = Table(f"{s3_server.bucket()}/t", SCHEMA, ("k",))
    table.upsert(pa.table({"k": ["a"], "v": [1]}))
    with FaultProxy(s3_server.endpoint, lambda m, p: "slowdown" if m == "PUT" and "/_delta_log/" in p else None) as px:
        out = write_through(px, table.uri)
    assert "StorageError" in out["error"] and "nothing was committed" in out["error"]
    assert len(commits(px)) > 1 and set(commits(px)) == {"slowdown"}  # retried, throttled every time
    assert table.version() == 0 and table.read().to_pylist() == [{"k": "a", "v": 1}]  # no half version
    first = {"n": 0}

    def once(method, path):  # one more SlowDown, then the store recovers
        if method == "PUT" and "/_delta_log/" in path:
            first["n"] += 1
            return "slowdown" if first["n"] == 1 else None

    with FaultProxy(s3_server.endpoint, once) as px:
        assert write_through(px, table.uri) == {"upsert": 2, "append": 1}
    assert commits(px)[0] == "slowdown"
    assert table.read().to_pylist() == [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "c", "v": 3},
                                        {"k": "d", "v": 4}]


def test_a_connection_dropped_during_a_commit_neither_loses_nor_doubles_rows(s3_server):  # noqa: F811
    table = Table(f"{s3_server.bucket()}/t", SCHEMA, ("k",))
    table.upsert(pa.table({"k": ["a"], "v": [1]}))
    dropped = {"n": 0}

    def drop(method, path):  # the store applies the first commit of each write; its reply never arrives
        if method == "PUT" and "/_delta_log/" in path:
            dropped["n"] += 1
            return "drop-after" if dropped["n"] in (1, 3) else None

    with FaultProxy(s3_server.endpoint, drop) as px:
        out = write_through(px, table.uri)
    assert "drop-after" in commits(px)
    assert out == {"upsert": 2, "append": 1}  # the landed commit is recognised, not reported as failed
    assert table.read().to_pylist() == [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "c", "v": 3},
                                        {"k": "d", "v": 4}]
    assert table.num_rows() == 4
    # And a connection dropped before the store saw the commit: a plain failure, nothing committed.
    version = table.version()
    with FaultProxy(s3_server.endpoint, lambda m, p: "drop" if m == "PUT" and "/_delta_log/" in p else None) as px:
        out = write_through(px, table.uri)
    assert "nothing was committed" in out["error"] and table.version() == version


def test_unwritable_bucket_is_a_storage_error(s3_server):  # noqa: F811
    table = Table("s3://no-such-bucket-dataflux/t", SCHEMA, ("k",))
    with pytest.raises(StorageError, match="nothing was committed"):
        table.upsert(pa.table({"k": ["a"], "v": [1]}))


def test_llm_cache_under_an_s3_run_folder_serves_a_rerun_from_another_process(s3_server):  # noqa: F811
    """The request cache of an s3:// run folder is one JSON object per answer under RUN_DIR/llm_cache/;
    a second client (another worker, another node: it shares nothing but the bucket) sends nothing."""
    from dataflux.llm.cache import StoreCache, open_cache
    from dataflux.llm.client import Endpoint, LLMClient, run_all
    from tests.openai_double import OpenAIDouble, completion

    run = RunFolder(f"{s3_server.bucket()}/run")
    requests = [{"messages": [{"role": "user", "content": f"q{i}"}], "template_version": "t1"} for i in range(5)]
    with OpenAIDouble(lambda body: (200, completion("answer"), {})) as server:
        endpoint = Endpoint(base_url=server.base_url, model="m", max_retries=0)
        first = run_all(LLMClient.open(endpoint, run.llm_cache), requests)
        assert len(server.requests) == 5 and not any(r.cached for r in first)
        second = LLMClient(endpoint, StoreCache(run.llm_cache))
        again = run_all(second, requests)
    assert len(server.requests) == 5 and second.usage.requests == 0 and second.usage.cache_hits == 5
    assert [r.text for r in again] == ["answer"] * 5 and all(r.cached for r in again)
    assert isinstance(open_cache(run.llm_cache), StoreCache) and len(open_cache(run.llm_cache)) == 5
