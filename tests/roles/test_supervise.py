"""A model server and everything it started end with its replica actor, however the actor ends."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from dataflux.llm import replicas

SUPERVISE = str(Path(replicas.__file__).with_name("supervise.py"))
# a "server" that starts a child of its own (as vLLM's API server starts its engine core), then waits
SERVER = [sys.executable, "-c", "import subprocess, sys, time; "
          "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)"]
# the "actor": starts the supervised server and prints the supervisor's pid
ACTOR = ("import subprocess, sys, time; "
         f"p = subprocess.Popen([sys.executable, {SUPERVISE!r}] + {SERVER!r}); print(p.pid, flush=True); "
         "time.sleep(300)")


def descendants_after(kill, timeout: float = 20.0) -> list[psutil.Process]:
    actor = subprocess.Popen([sys.executable, "-c", ACTOR], stdout=subprocess.PIPE, text=True)
    supervisor = psutil.Process(int(actor.stdout.readline()))
    deadline = time.monotonic() + 10
    while len(supervisor.children(recursive=True)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    group = supervisor.children(recursive=True)
    assert len(group) == 3  # the watchdog, the server and the server's own child
    kill(actor, supervisor)
    deadline = time.monotonic() + timeout
    alive = [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    actor.kill()
    actor.wait()
    return alive


def test_a_sigkilled_actor_takes_the_server_and_its_children_down():
    assert descendants_after(lambda actor, _: os.kill(actor.pid, signal.SIGKILL)) == []


def test_when_ray_sigkills_the_actor_and_its_direct_children_the_watchdog_ends_the_group():
    def ray_kill(actor, supervisor):
        supervisor.kill()
        os.kill(actor.pid, signal.SIGKILL)
        actor.wait()  # reaped, as the raylet reaps its workers

    assert descendants_after(ray_kill) == []


def test_stopping_the_supervisor_stops_the_whole_group():
    assert descendants_after(lambda _, supervisor: supervisor.terminate()) == []
