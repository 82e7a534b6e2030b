"""One flow run per run folder, not one per deployment: `dataflux-synthesize` has no deployment-wide
concurrency limit; a run waits for its run folder's own lock (storage/run_folder.py `RunFolder.lock`
with `wait_s=None`), so backfill partitions (one run folder each) and watch-triggered runs for different
folders run at once, while a second run into the same folder waits for the first, before touching it.
The lock is the OS's (flock): a holder that dies, SIGKILL included, frees it at once; no lease, nothing
kept by the Prefect server (whose concurrency leases a server restart forgets)."""

import json
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

PROBE = """
import json, sys, time
from pathlib import Path
from storage.run_folder import RunFolder

# hold the run folder, waiting for it as the synthesize flow does, for hold_s seconds or until the file
# MARKER.release appears
run_dir, hold_s, marker = sys.argv[1], float(sys.argv[2]), sys.argv[3]
with RunFolder(run_dir).lock({"probe": marker}, wait_s=None):
    start = time.time()
    Path(marker).write_text(str(start))
    while time.time() < start + hold_s and not Path(marker + ".release").exists():
        time.sleep(0.1)
    end = time.time()
print("SPAN " + json.dumps([start, end]))
"""


@pytest.fixture
def children():
    """The child processes a test starts; any still running at its end are ended."""
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _start(env, *args):
    return subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)


def _span(proc) -> list[float]:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(next(x for x in out.splitlines() if x.startswith("SPAN "))[5:])


def _wait_for(*markers, procs=(), timeout_s: float = 120):
    deadline = time.time() + timeout_s
    while not any(m.exists() for m in markers):
        assert time.time() < deadline, f"none of {markers} within {timeout_s} s"
        for p in procs:
            assert p.poll() is None, p.communicate()[1][-3000:]
        time.sleep(0.2)
    return next(m for m in markers if m.exists())


def test_runs_into_two_folders_overlap_and_two_into_one_folder_do_not(tmp_path, children):
    """Each probe holds its folder until the test releases it: a and b into one folder, c into
    another. c and the first of a/b hold at once; the second of a/b starts only once the first is released."""
    one, other = str(tmp_path / "runs" / "2026-11-30"), str(tmp_path / "runs" / "2026-12-01")
    marker = {name: tmp_path / f"{name}.started" for name in "abc"}
    procs = {name: _start(None, PROBE, folder, "120", str(marker[name]))
             for name, folder in (("a", one), ("b", one), ("c", other))}
    children.extend(procs.values())
    first = _wait_for(marker["a"], marker["b"], procs=procs.values()).stem.split(".")[0]
    second = "b" if first == "a" else "a"
    _wait_for(marker["c"], procs=procs.values())  # another folder: held while `first` holds its own
    time.sleep(3)
    assert not marker[second].exists() and procs[second].poll() is None  # the same folder: it waits
    (tmp_path / f"{first}.started.release").write_text("")
    spans = {first: _span(procs[first])}
    _wait_for(marker[second], procs=[procs[second]])
    for name in (second, "c"):
        (tmp_path / f"{name}.started.release").write_text("")
        spans[name] = _span(procs[name])
    assert spans[second][0] >= spans[first][1], spans  # one after the other
    assert min(spans["c"][1], spans[first][1]) - max(spans["c"][0], spans[first][0]) > 3, spans  # at once


SYNTHESIZE = """
import sys
from flows.synthesize import synthesize
state = synthesize(config=sys.argv[1], source=sys.argv[2], run_dir=sys.argv[3], return_state=True)
print("STATE", state.name)
"""


def test_synthesize_waits_for_its_run_folder_and_the_deployment_has_no_deployment_wide_limit(local_prefect, tmp_path,
                                                                                            children):
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    synthesize = next(d for d in spec["deployments"] if d["name"] == "dataflux-synthesize")
    assert "concurrency_limit" not in synthesize  # backfill partitions and other folders are not queued
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState, \
        FlowRunFilterStateName

    run_dir, empty = tmp_path / "run", tmp_path / "no-audio-yet"
    empty.mkdir()
    marker = tmp_path / "holder.started"
    holder = _start(None, PROBE, str(run_dir), "300", str(marker))
    children.append(holder)
    deadline = time.time() + 120
    while not marker.exists():
        assert time.time() < deadline and holder.poll() is None, holder.communicate()[1][-3000:]
        time.sleep(0.2)
    # a synthesize run into the held folder (its source is an empty folder: nothing to do, once it runs)
    waiting = _start(local_prefect.env(), SYNTHESIZE, str(ROOT / "examples" / "demo.yaml"), str(empty),
                     str(run_dir))
    children.append(waiting)
    with get_client(sync_client=True) as client:
        def running():
            return [r for r in client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["dataflux-synthesize"])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Running"]))))
                if r.parameters.get("run_dir") == str(run_dir)]

        while not running():
            assert time.time() < deadline and waiting.poll() is None, waiting.communicate()[1][-3000:]
            time.sleep(0.5)
    time.sleep(3)  # it runs, and waits for the folder: it has not touched it
    assert waiting.poll() is None and not (run_dir / "run.json").exists()
    (tmp_path / "holder.started.release").write_text("")
    held = _span(holder)
    out, err = waiting.communicate(timeout=240)
    assert "STATE Completed" in out, err[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert len(info["invocations"]) == 1 and info["invocations"][0]["status"] == "completed"  # it ran, once
    assert (run_dir / "run.json").stat().st_mtime >= held[1], (held, (run_dir / "run.json").stat().st_mtime)


def test_a_killed_holder_frees_its_folder_at_once(tmp_path, children):
    """A holder SIGKILLed while it holds the folder leaves nothing behind: the next run into the folder,
    already waiting, starts within a second or two."""
    folder = str(tmp_path / "runs" / "killed")
    first, second = tmp_path / "first.started", tmp_path / "second.started"
    victim = _start(None, PROBE, folder, "600", str(first))
    children.append(victim)
    _wait_for(first, procs=[victim])
    follower = _start(None, PROBE, folder, "0", str(second))
    children.append(follower)
    time.sleep(3)
    assert not second.exists() and follower.poll() is None  # it waits for the live holder
    victim.kill()
    killed_at = time.time()
    victim.wait(timeout=30)
    span = _span(follower)
    assert span[0] - killed_at < 5, span
