"""A Ray cluster of several nodes, started as a user starts one (`ray start` per node, token authentication
on), joined by `dataflux run --ray-address`:

- a chain entry that declares a custom accelerator resource runs only on the node that has it;
- a worker node SIGKILLed in the middle of a table pass (stage actors running on it, nothing committed
  yet) ends with the pass done elsewhere: every clip annotated exactly once, one commit, no stray files;
- an endpoint's rpm holds for four actors on two nodes over a minute, counted at the server.

The head has no CPUs (it holds the GCS, as on a real cluster); three worker nodes have one CPU each. The
pitch entry asks for 0.6 CPU twice, so its two actors sit on two different nodes and at least one of them
on a plain worker node, the one the test kills; a restarted actor fits on the node that is left."""

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from storage.run_folder import RunFolder
from storage.tables import PASS_FILE_PREFIX
from tests.conftest import ROOT
from tests.openai_double import OpenAIDouble, completion
from tests.runners.local_cluster import LocalCluster
from tests.runners.test_table_pass import synth

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PLAIN = ("wa", "wb")
CLIPS = 300


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster()
    try:
        yield c.start({"marker": "head", "num_cpus": 0},
                      {"marker": "accel_node", "num_cpus": 1, "resources": {"accel": 1}},
                      {"marker": "wa", "num_cpus": 1}, {"marker": "wb", "num_cpus": 1})
    finally:
        c.stop()


def driver_env(c: LocalCluster) -> dict:
    """A user's shell: the cluster's token in RAY_AUTH_TOKEN, nothing else set about Ray."""
    return {k: v for k, v in c.env.items() if k != "RAY_AUTH_MODE"}


def stage_actor_node(c: LocalCluster) -> str | None:
    for marker in PLAIN:
        if any("MapWorker" in " ".join(p.cmdline()) for p in c.workers_on(marker)):
            return marker
    return None


def test_a_worker_node_killed_mid_pass_loses_and_duplicates_nothing(cluster, tmp_path):
    synth(tmp_path / "src", CLIPS, 2.0)
    config = tmp_path / "run.yaml"
    config.write_text(textwrap.dedent(f"""\
        source: {tmp_path / 'src'}
        out: {tmp_path / 'out'}
        runner: ray
        annotate:
          skip: [asr, speakers, dnsmos, measure, gender, acoustics]
          threads: 1
          resources:
            describe: {{custom: {{accel: 1}}}}
            pitch: {{num_cpus: 0.6, concurrency: 2}}
        """))
    cmd = [str(ROOT / ".venv/bin/dataflux"), "run", "--config", str(config), "--until", "annotate",
           "--ray-address", cluster.address]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=driver_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
    victim = None
    while victim is None and proc.poll() is None and time.monotonic() - start < 180:
        victim = stage_actor_node(cluster)
        time.sleep(0.2)
    assert victim, "no stage actor ever ran on a plain worker node:\n" + "".join(output)[-3000:]
    time.sleep(2.0)  # the actors there are working on batches
    annotations = tmp_path / "out" / "annotations"
    assert proc.poll() is None and not (annotations / "_delta_log").exists(), "the pass ended before the kill"
    killed = cluster.kill(victim)
    assert proc.wait(timeout=600) == 0, "".join(output)[-4000:]
    text = "".join(output)
    assert killed >= 3 and f"annotate: {CLIPS} in, {CLIPS} out, 0 rejected" in text, text[-3000:]

    run = RunFolder(tmp_path / "out")
    table = run.table("annotations")
    ids = table.read(columns=["clip_id"])["clip_id"].to_pylist()
    assert len(ids) == len(set(ids)) == CLIPS
    assert set(ids) == set(run.table("clips").read(columns=["clip_id"])["clip_id"].to_pylist())
    assert all(table.read(columns=["caption"])["caption"].to_pylist())
    # one commit holds exactly the files the pass wrote; a dead attempt's files are gone
    assert [h["operation"] for h in table.history()] == ["CREATE TABLE"]
    committed = sorted(Path(f).name for f in table.files())
    assert committed == sorted(p.name for p in annotations.glob(f"{PASS_FILE_PREFIX}*.parquet"))
    # the accelerator entry ran on the accelerator node only; the audio reached the end once
    stats = json.loads((tmp_path / "out" / "stats" / "annotate.json").read_text())
    accel = cluster.nodes["accel_node"][:12]
    ran_describe = {node for node, entries in stats["nodes"].items() if "describe" in entries}
    assert ran_describe == {accel}, stats["nodes"]
    assert stats["nodes"][accel]["describe"] == pytest.approx(2.0 * CLIPS)


RPM, ACTORS, SECONDS = 120, 4, 60.0
SENDER = textwrap.dedent("""
    import json, sys
    import ray
    from dataflux.llm.client import Endpoint, LLMClient, run_all

    address, host, base_url, per_actor, a, b = sys.argv[1:7]
    per_actor = int(per_actor)
    ray.init(address=address, _node_ip_address=host, log_to_driver=False, configure_logging=False)

    class Sender:
        def send(self, worker):
            client = LLMClient(Endpoint(base_url=base_url, model="m", name="two-node-endpoint", rpm=%d,
                                        concurrency=4, max_retries=0))
            results = run_all(client, [{"messages": [{"role": "user", "content": f"{worker}-{i}"}],
                                        "template_version": "t"} for i in range(per_actor)])
            return {"ok": sum(r.text == "done" for r in results), "shared": client.limiter.shared() is not None,
                    "node": ray.get_runtime_context().get_node_id()}

    placement = [{a: 0.25}, {a: 0.25}, {b: 0.25}, {b: 0.25}]  # two actors on each of two nodes
    actors = [ray.remote(num_cpus=0, resources=r)(Sender).remote() for r in placement]
    print(json.dumps(ray.get([a.send.remote(i) for i, a in enumerate(actors)], timeout=300)))
""" % RPM)


def test_rpm_holds_for_four_actors_on_two_nodes_over_a_minute(cluster):
    """rpm 120 with a burst of 2 (one second's worth): any 60 s holds at most 120 + 2 requests. The actors
    ask for 2 x (60 s + 3 s) + 2 requests in all, more than a minute's worth: unshared, four actors of
    concurrency 4 would send them all within a few seconds."""
    arrivals = []

    def reply(body):
        arrivals.append(time.monotonic())
        return 200, completion("done"), {}

    burst = 2
    per_actor = int((RPM / 60 * (SECONDS + 3) + burst) / ACTORS) + 1
    two = ["accel_node", next(m for m in PLAIN if m not in cluster.killed)]
    with OpenAIDouble(reply) as server:
        out = subprocess.run([sys.executable, "-c", SENDER, cluster.address, cluster.address.split(":")[0],
                              server.base_url, str(per_actor), *two], env=cluster.env, cwd=ROOT,
                             capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    outcomes = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(o["ok"] == per_actor and o["shared"] for o in outcomes), outcomes
    nodes = {o["node"] for o in outcomes}
    assert nodes == {cluster.nodes[m] for m in two}, nodes
    arrivals.sort()
    assert len(arrivals) == ACTORS * per_actor and arrivals[-1] - arrivals[0] > SECONDS
    busiest = max(sum(1 for t in arrivals if s <= t < s + SECONDS) for s in arrivals)
    assert busiest <= RPM + burst, busiest
    assert busiest >= RPM - 2 * burst  # a pace, not a stall: the minute was used
