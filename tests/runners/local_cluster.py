"""A Ray cluster of several nodes on this machine, started the way a user starts one: `ray start --head` and
`ray start --address` in separate processes, every node bound to loopback, token authentication on (Ray's
default), each node with its own CPUs and custom resources. A node can be killed (SIGKILL to its raylet and
every process under it), as when a machine of a cluster dies."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from dataflux.llm.server import free_port

RAY = Path(sys.executable).with_name("ray")
HOST = "127.0.0.2"
NODE_IDS = """
import json, ray
ray.init(address="{address}", _node_ip_address="{host}", log_to_driver=False, configure_logging=False)
print(json.dumps({{n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}}))
"""


class LocalCluster:
    def __init__(self):
        self.port = free_port()
        # Loopback, but not 127.0.0.1: `ray start` swaps 127.0.0.1 (only that spelling) for the machine's
        # outward address once a cluster has more than one node; the rest of 127/8 is loopback too.
        self.address = f"{HOST}:{self.port}"
        # short: Ray's Unix sockets live under it and a socket path may not exceed 107 bytes
        self.temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")
        self.token = secrets.token_hex(16)
        self.env = {**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")},
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0"}
        self.nodes: dict[str, str] = {}  # marker resource -> node id
        self.killed: set[str] = set()

    def start(self, head: dict, *workers: dict) -> "LocalCluster":
        """Each node: {"marker": str, "num_cpus": n, "resources": {...}}; the marker resource (one unit)
        names the node so that tests can find and kill it."""
        self._ray("start", "--head", f"--port={self.port}", f"--temp-dir={self.temp}", "--include-dashboard=false",
                  *self._node_args(head))
        for worker in workers:
            self._ray("start", f"--address={self.address}", *self._node_args(worker))
        markers = [n["marker"] for n in (head, *workers)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = self.node_resources()
            self.nodes = {m: nid for nid, res in found.items() for m in markers if m in res}
            if len(self.nodes) == len(markers):
                return self
            time.sleep(1)
        raise RuntimeError(f"cluster nodes did not all register: {self.nodes}")

    def _node_args(self, node: dict) -> list[str]:
        resources = {node["marker"]: 1, **node.get("resources", {})}
        return [f"--node-ip-address={HOST}", f"--num-cpus={node['num_cpus']}",
                f"--resources={json.dumps(resources)}", "--disable-usage-stats"]

    def _ray(self, *args: str) -> None:
        # a process that started Ray locally (a test session's own instance) sets this to 0, which would
        # refuse worker nodes
        env = {**self.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
        out = subprocess.run([str(RAY), *args], env=env, capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"ray {args[0]} failed: {out.stderr[-2000:]}")

    def node_resources(self) -> dict[str, dict]:
        out = subprocess.run([sys.executable, "-c", NODE_IDS.format(address=self.address, host=HOST)], env=self.env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])

    def raylet(self, marker: str) -> psutil.Process:
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "raylet" in (proc.info["name"] or "") and f"static_resource_list={marker}," in cmd \
                    and self.temp in cmd:
                return proc
        raise LookupError(f"no raylet for node {marker}")

    def workers_on(self, marker: str) -> list[psutil.Process]:
        """The Ray worker processes running on that node (the raylet's children named ray::...)."""
        return [p for p in self.raylet(marker).children(recursive=True) if p.name().startswith("ray::")]

    def kill(self, marker: str) -> int:
        """SIGKILL the node's raylet and everything under it; returns how many processes died."""
        raylet = self.raylet(marker)
        victims = [raylet, *raylet.children(recursive=True)]
        for p in victims:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=30)
        self.killed.add(marker)
        return len(victims)

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those naming its temp folder or GCS port, and all under them."""
        ours = [p for p in psutil.process_iter(["cmdline"]) if p.pid != os.getpid()
                and any(self.temp in a or a.endswith(f":{self.port}") for a in (p.info["cmdline"] or []))]
        return list({p.pid: p for top in ours for p in [top, *_children(top)]}.values())

    def stop(self) -> None:
        """Not `ray stop`: that ends every Ray instance of this machine's user, the test session's own too."""
        procs = self.processes()
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)
        shutil.rmtree(self.temp, ignore_errors=True)


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
