"""Run a model server so that nothing of it outlives its replica actor.

`python supervise.py CMD...` starts CMD in a process group of its own, with a watchdog in that group
that takes the whole group down once the actor process is gone. The supervisor itself also stops the
group when told to (SIGTERM/SIGINT: `ReplicaServer.stop`) or when the actor dies (PR_SET_PDEATHSIG). The
watchdog is needed because Ray SIGKILLs a dead worker's direct children, which is the supervisor: its
handlers never run, but the watchdog, not a child of the worker, still sees the actor gone. A server's
own children (vLLM's engine core and workers) are in the group, so none is left running on its own;
measured before this existed: killed test sessions left vLLM engine cores holding ~2 GB each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

GRACE_S = 15.0  # for the server to stop on its own before the group is killed


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent process dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(actor: int, pgid: int, poll_s: float = 1.0) -> int:
    """In the server's group: once the actor is gone, stop the group (this process included)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's own SIGTERM is for the server
    while alive(actor) and alive(pgid):
        time.sleep(poll_s)
    kill_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    kill_group(pgid, signal.SIGKILL)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--watch"]:
        return watch(int(argv[1]), int(argv[2]))
    if not argv:
        print("usage: python supervise.py CMD [ARGS...]", file=sys.stderr)
        return 2
    parent = os.getppid()
    die_with_parent()
    proc = subprocess.Popen(argv, process_group=0)  # a group of its own, which the watchdog joins
    subprocess.Popen([sys.executable, __file__, "--watch", str(parent), str(proc.pid)], process_group=proc.pid,
                     stdin=subprocess.DEVNULL)

    def stop(signum, frame) -> None:
        kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        kill_group(proc.pid, signal.SIGKILL)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        stop(signal.SIGTERM, None)
    code = proc.wait()
    kill_group(proc.pid, signal.SIGKILL)  # whatever the server left behind in its group
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
