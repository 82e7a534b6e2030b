"""`dataflux server`: a local Prefect server (SQLite, bound to 127.0.0.1 unless told otherwise) and a
process work-pool worker, started together and stopped together. The test suite starts the same thing.
Bound to any other address, it requires Prefect's basic auth (PREFECT_SERVER_API_AUTH_STRING)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dataflux.llm.server import free_port


LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = "PREFECT_SERVER_API_AUTH_STRING"


class LocalPrefect:
    """`host`: the address the server binds; anything but loopback needs `auth_string` (user:password,
    Prefect's basic auth), which the worker and `env()` pass on as the client's PREFECT_API_AUTH_STRING."""

    def __init__(self, home: str | Path | None = None, port: int | None = None, pool: str = "dataflux",
                 worker: bool = True, log_dir: str | Path | None = None, host: str = "127.0.0.1",
                 auth_string: str | None = None):
        if host not in LOOPBACK and not auth_string:
            raise ValueError(f"refusing to bind the Prefect server to {host} without an auth string: anyone who "
                             f"reaches it could run code through it; set {AUTH_ENV}=user:password")
        self.host, self.auth_string = host, auth_string
        self.home = Path(home) if home else Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
        self.port = port or free_port()
        self.pool, self.worker = pool, worker
        self.log_dir = Path(log_dir) if log_dir else self.home
        self.procs: list[subprocess.Popen] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        auth = {AUTH_ENV: self.auth_string, "PREFECT_API_AUTH_STRING": self.auth_string} if self.auth_string else {}
        return {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_API_HOST": self.host,
                "PREFECT_SERVER_API_PORT": str(self.port), "PREFECT_UI_API_URL": self.api_url, **auth}

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "prefect", *args], env=self.env(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self, timeout_s: float = 90) -> "LocalPrefect":
        self.home.mkdir(parents=True, exist_ok=True)
        server = self._spawn("server", "server", "start", "--host", self.host, "--port", str(self.port))
        deadline = time.time() + timeout_s
        while True:
            if server.poll() is not None:
                log = self.log_dir / "server.log"
                raise RuntimeError(f"the Prefect server exited ({server.returncode}); see {log}")
            try:
                request = urllib.request.Request(f"{self.api_url}/health", headers=self.auth_header())
                with urllib.request.urlopen(request, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise TimeoutError(f"the Prefect server did not answer within {timeout_s:.0f} s")
            time.sleep(0.5)
        if self.worker:
            self.start_worker()
        return self

    def auth_header(self) -> dict[str, str]:
        if not self.auth_string:
            return {}
        import base64

        return {"Authorization": "Basic " + base64.b64encode(self.auth_string.encode()).decode()}

    def start_worker(self) -> subprocess.Popen:
        return self._spawn("worker", "worker", "start", "--pool", self.pool, "--type", "process")

    def stop(self) -> None:
        flush_prefect_clients()  # this process's queued logs and events reach the server before it stops
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.procs = []

    def __enter__(self) -> "LocalPrefect":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def flush_prefect_clients(timeout_s: float = 10) -> None:
    """Send this process's queued Prefect logs and events now. Stopping a server with some still
    queued leaves their workers retrying against a closed port ("Error logging to API") and can hold
    the process at exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout_s, at_exit=False)
        except Exception:  # nothing queued or already stopped: nothing to send
            pass
