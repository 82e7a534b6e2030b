"""`dataflux maintain` on a run folder with many small commits: live and on-disk file counts fall,
every table reads the same, versions inside the retention window stay readable and older ones fail
with a clear message; the LLM cache loses only the answers of retired prompt versions."""

import subprocess
import sys
import time

import polars as pl
import pytest

from dataflux.llm.cache import RequestCache
from storage.maintenance import data_files, maintain_tables
from storage.run_folder import RunFolder
from storage.tables import VersionVacuumed
from tests.storage.fill import fill, rows


def _cli(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "dataflux.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_maintain_compacts_vacuums_past_retention_and_prunes_the_cache(tmp_path):
    from datetime import timedelta

    from dataflux.generate.prompts import PROMPT_VERSION

    run = fill(RunFolder(tmp_path / "run"), commits=4, per_commit=3)  # versions 0..3: older than the window
    time.sleep(0.6)
    window_start = time.time()
    time.sleep(0.3)
    for name in run.tables():  # versions 4..7: inside the window
        for c in range(4, 8):
            run.write(name, rows(name, c * 3, 3))
    names = run.tables()
    latest = {n: run.table(n).read() for n in names}
    v5 = {n: run.table(n).read(version=5) for n in names}
    disk = {n: len(data_files(run.local_path / n)) for n in names}
    assert all(count == 8 for count in disk.values())

    report = {t["table"]: t for t in maintain_tables(run, timedelta(seconds=time.time() - window_start))}
    for n in names:
        t = report[n]
        assert t["checkpoint"] and t["files_deleted"] == 0  # versions 4..7 still need every small file
        if n == "corpus":  # publications: never compacted
            assert not t["compacted"] and t["live_files_after"] == 8 and t["version_after"] == 7
        else:
            assert t["compacted"] and t["live_files_before"] == 8 and t["live_files_after"] == 1
            assert t["version_after"] == 8 and t["files_on_disk_after"] == 9
        assert run.table(n).read().equals(latest[n]), n  # the same rows, in the same order
        assert run.table(n).read(version=5).equals(v5[n]), n  # time travel inside the window
        assert pl.read_delta(run.table(n).uri).height == latest[n].num_rows

    cache = RequestCache(run.local_path / "llm_cache.sqlite")
    for i in range(3):
        cache.put(f"old{i}", {"text": "x" * 2000}, "question-writer-v0")  # a retired prompt version
    cache.put("new", {"text": "y"}, PROMPT_VERSION)
    cache.put("unknown", {"text": "z"})  # written before versions were recorded: kept
    cache.close()

    time.sleep(1.2)  # now only the latest versions lie inside a 1 s window
    out = _cli("maintain", run.local_path, "--retention-hours", 1 / 3600)
    assert "llm cache: answers of retired prompt versions deleted: question-writer-v0=3" in out, out
    assert "freed" in out and "clips: live files 1 -> 1, files on disk 9 -> 1, 8 deleted" in out, out
    for n in names:
        table = run.table(n)
        assert table.read().equals(latest[n]), n
        assert len(data_files(run.local_path / n)) == (8 if n == "corpus" else 1), n
        if n == "corpus":
            assert table.read(version=5).equals(v5[n])  # appends only: its old versions keep their files
            continue
        with pytest.raises(VersionVacuumed, match=f"{n} version 5 is no longer readable: .* were vacuumed"):
            table.read(version=5)
    cache = RequestCache(run.local_path / "llm_cache.sqlite")
    assert cache.templates() == {PROMPT_VERSION: 1, None: 1}
    cache.close()
    bad = subprocess.run([sys.executable, "-m", "dataflux.cli", "tables", "show", run.local_path, "--table", "clips",
                          "--version", "2"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "clips version 2 is no longer readable" in bad.stderr, bad.stderr


def test_dry_run_deletes_nothing(tmp_path):
    run = fill(RunFolder(tmp_path / "run"), commits=3, per_commit=2, tables=["clips"])
    before = len(data_files(run.local_path / "clips"))
    out = _cli("maintain", run.local_path, "--retention-hours", 0, "--dry-run")
    assert "would free" in out and len(data_files(run.local_path / "clips")) == before == 3
    assert run.table("clips").version() == 2 and run.table("clips").read(version=0).num_rows == 2
