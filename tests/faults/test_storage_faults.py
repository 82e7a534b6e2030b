"""A full disk and a read-only run folder: a clear error (exit 4, the table or file and the OS reason,
no traceback) and no half-written table version; with space back, a re-run completes.

Real filesystems: a size-limited tmpfs fills up for real (ENOSPC), a read-only mount refuses writes
(EROFS). Mounting needs the right to mount (CI runs as privileged root); whether this process has it
is found by mounting a tiny tmpfs for real, since root in an unprivileged container (no CAP_SYS_ADMIN)
passes a uid check but cannot mount. Without it the full-disk case skips with the mount's own error
and the read-only case uses file modes."""

import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage.run_folder import RunFolder
from tests.conftest import ROOT, assert_accounted_once
from tests.faults.harness import small_source, write_config

pytestmark = pytest.mark.slow


def mount_refusal() -> str | None:
    """None when a size-limited tmpfs can be mounted, remounted and unmounted here (tried with a 64 KiB
    one); otherwise why not, in the words of the command that failed."""
    with tempfile.TemporaryDirectory() as folder:
        steps = (("mount", ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder]),
                 ("remount", ["mount", "-o", "remount,size=128k", folder]), ("unmount", ["umount", folder]))
        for step, cmd in steps:
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired) as e:
                r = subprocess.CompletedProcess(cmd, -1, "", str(e))
            if r.returncode != 0:
                if step != "mount":  # it is mounted: do not leave it behind
                    subprocess.run(["umount", "-l", folder], capture_output=True)
                why = " ".join((r.stderr or r.stdout).split()) or f"exit {r.returncode}"
                return f"cannot {step} a tmpfs here: {why}"
    return None


MOUNT_REFUSAL = mount_refusal()


def can_mount() -> bool:
    return MOUNT_REFUSAL is None


@contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def dataflux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataflux.cli", *args, "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def visible_versions(run_dir: Path) -> dict[str, int | None]:
    run = RunFolder(run_dir)
    return {name: run.table(name).version() for name in run.tables()}


@pytest.mark.skipif(not can_mount(), reason=f"needs to mount a size-limited tmpfs: {MOUNT_REFUSAL}")
def test_disk_full_during_a_commit_is_a_clear_error_then_a_rerun_completes(tmp_path):
    source = small_source(tmp_path / "src")
    config = write_config(tmp_path / "full.yaml", source)
    with tmpfs(tmp_path / "disk", "400k") as disk:  # room for run.json, not for the clips' audio
        run_dir = disk / "run"
        r = dataflux("run", "--config", str(config), "--out", str(run_dir), "--until", "annotate")
        assert r.returncode == 4, r.stderr[-3000:]
        assert "No space left on device" in r.stderr and "clips" in r.stderr
        assert "Traceback" not in r.stderr
        assert visible_versions(run_dir) == {}  # the failed commit left no table version behind
        assert RunFolder(run_dir).read_run_json()["invocations"][-1]["status"] in ("running", "failed")

        remount(disk, "size=64m")  # space is back: the same command completes
        r = dataflux("run", "--config", str(config), "--out", str(run_dir), "--until", "annotate")
        assert r.returncode == 0, r.stderr[-3000:]
        run = RunFolder(run_dir)
        assert_accounted_once(run, source)
        assert run.table("annotations").num_rows() == run.table("clips").num_rows() > 0


def test_read_only_run_folder_is_a_clear_error_and_changes_nothing(tmp_path):
    source = small_source(tmp_path / "src")
    config = write_config(tmp_path / "ro.yaml", source)
    if can_mount():
        folder = tmp_path / "disk"
        stack = tmpfs(folder, "64m")
        stack.__enter__()
    else:
        folder, stack = tmp_path / "disk", None
        folder.mkdir()
    try:
        run_dir = folder / "run"
        r = dataflux("run", "--config", str(config), "--out", str(run_dir), "--until", "ingest")
        assert r.returncode == 0, r.stderr[-3000:]
        before = visible_versions(run_dir)
        files = sorted(p for p in run_dir.rglob("*"))
        if stack:
            remount(folder, "ro")
        else:
            for p in [run_dir, *files]:
                p.chmod(p.stat().st_mode & ~0o222)
        r = dataflux("run", "--config", str(config), "--out", str(run_dir), "--until", "annotate")
        assert r.returncode == 4, r.stderr[-3000:]
        assert str(run_dir) in r.stderr and ("Read-only file system" in r.stderr or "Permission denied" in r.stderr)
        assert "Traceback" not in r.stderr
        assert visible_versions(run_dir) == before and sorted(run_dir.rglob("*")) == files
    finally:
        if stack:
            stack.__exit__(None, None, None)
        else:
            for p in folder.rglob("*"):
                p.chmod(p.stat().st_mode | 0o200)
