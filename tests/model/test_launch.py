"""`dataflux train --nproc N` runs torchrun in its own process group: a SIGTERM / SIGINT to the launcher
reaches torchrun and every rank, and a launcher killed outright takes torchrun with it (no orphaned ranks
waiting on a collective for ever). A stand-in for torchrun (a process with a child) keeps this fast."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from tests.conftest import ROOT

TORCHRUN = textwrap.dedent("""
    import subprocess, sys, time
    rank = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(sys.argv[1], "w").write(f"{rank.pid}\\n")
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def launch(tmp_path):
    (tmp_path / "torchrun.py").write_text(TORCHRUN)
    pids = tmp_path / "pids"
    code = ("import sys; from dataflux.cli import run_process_group; "
            f"sys.exit(run_process_group([sys.executable, {str(tmp_path / 'torchrun.py')!r}, {str(pids)!r}]))")
    launcher = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.1)
    rank = int(pids.read_text())
    return launcher, rank


def kill_all(*pids):
    for pid in pids:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigterm_to_the_launcher_reaches_every_rank(tmp_path):
    launcher, rank = launch(tmp_path)
    try:
        assert os.getpgid(rank) != os.getpgid(launcher.pid)  # torchrun's group is not the launcher's
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=20) != 0
        assert gone(rank), "the rank outlived a SIGTERM to the launcher"
    finally:
        kill_all(rank, launcher.pid)


def test_a_launcher_killed_outright_takes_torchrun_with_it(tmp_path):
    launcher, rank = launch(tmp_path)
    torchrun = int(open(f"/proc/{rank}/stat").read().rsplit(")", 1)[1].split()[1])  # the rank's parent
    try:
        launcher.kill()
        launcher.wait(timeout=20)
        assert gone(torchrun), "torchrun outlived its launcher"
    finally:
        kill_all(rank, torchrun, launcher.pid)
