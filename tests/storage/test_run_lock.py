"""`RunFolder.lock` refuses a second live run into the same folder, and a holder killed with SIGKILL
leaves the lock free (the OS releases it) with its owner record readable for clean-up."""

import os
import signal
import subprocess
import sys
import textwrap

from dataflux.cli import main
from storage.run_folder import RunFolder
from tests.conftest import DEMO_AUDIO, ROOT

HOLDER = textwrap.dedent("""
    import sys, time
    from storage.run_folder import RunFolder
    with RunFolder(sys.argv[1]).lock({"command": "holder-test"}):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_a_second_live_run_is_refused_and_a_killed_holder_frees_the_lock(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(["run", "--config", str(ROOT / "examples" / "demo.yaml"), "--source", str(DEMO_AUDIO),
                     "--out", str(run_dir), "--until", "ingest", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "is in use by another run" in err
        assert f'"pid": {holder.pid}' in err and "holder-test" in err  # names the holder
        assert RunFolder(run_dir).tables() == [] and not (run_dir / "run.json").exists()  # nothing started
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with RunFolder(run_dir).lock({"command": "after"}) as previous:
        assert previous["pid"] == holder.pid and previous["command"] == "holder-test"


def test_a_waiting_lock_gives_up_after_wait_s_and_never_retries_the_callers_work(tmp_path):
    """With `wait_s`, a held folder is waited for (on_wait told once), then refused; work under the lock
    that itself raises RunFolderBusy is not retried."""
    import time

    import pytest

    from storage.run_folder import RunFolderBusy

    run = RunFolder(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        told, start = [], time.monotonic()
        with pytest.raises(RunFolderBusy, match="in use by another run"):
            with run.lock({"command": "waiter"}, wait_s=1.5, on_wait=told.append):
                pass
        assert 1.5 <= time.monotonic() - start < 5 and len(told) == 1 and "in use" in told[0]
    finally:
        holder.kill()
        holder.wait()
    entered = []
    with pytest.raises(RunFolderBusy, match="from the work"):
        with run.lock({"command": "worker"}, wait_s=None):
            entered.append(1)
            raise RunFolderBusy("from the work")
    assert entered == [1]
