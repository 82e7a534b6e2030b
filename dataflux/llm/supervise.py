"""Run a model server so that nothing of it outlives its replica actor.

`python -m dataflux.llm.supervise CMD...` starts CMD in a process group of its own and takes the whole
group down when it is told to stop (SIGTERM/SIGINT) or when its parent (the Ray actor) dies, however the
actor ended: the kernel sends this process SIGTERM then (PR_SET_PDEATHSIG). A server's own children
(vLLM's engine core and workers) are in the group, so none is left running on its own; measured before
this existed: a killed test session left two vLLM engine cores holding ~2 GB each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m dataflux.llm.supervise CMD [ARGS...]", file=sys.stderr)
        return 2
    parent = os.getppid()
    die_with_parent()
    proc = subprocess.Popen(argv, start_new_session=True)

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
