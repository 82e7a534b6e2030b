"""A Ray table pass: workers read the input table's files and write the output table's files; the driver
commits exactly those files in one transaction keyed on the pass."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from deltalake import DeltaTable

from dataflux.runners import LocalRunner
from dataflux.runners.ray import RayRunner
from dataflux.stages.annotate import AnnotateConfig, build_chain, run_annotate
from dataflux.stages.ingest import run_ingest
from storage.run_folder import RunFolder
from storage.schemas import conform
from storage.tables import PASS_FILE_PREFIX

ROOT = Path(__file__).resolve().parents[2]
CHEAP = ["vad", "asr", "measure", "pitch", "gender", "speakers", "dnsmos"]  # decode + levels, tags + caption


def synth(folder: Path, n: int, seconds: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 16000)) / 16000
    for i in range(n):
        rng = np.random.default_rng(i)
        wave = 0.2 * np.sin(2 * np.pi * (120 + 15 * i) * t) + rng.normal(0, 0.01, t.size)
        sf.write(folder / f"clip_{i:03d}.flac", wave.astype(np.float32), 16000)
    return folder


def pass_files(run: RunFolder, table: str) -> list[str]:
    return sorted(p.name for p in (run.local_path / table).glob(f"{PASS_FILE_PREFIX}*.parquet"))


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    base = tmp_path_factory.mktemp("pass")
    run = RunFolder(base / "run")
    run_ingest(str(synth(base / "src", 3, 2.0)), run, LocalRunner())
    # The other three clips as a run folder written before upserts became appends holds them: a delta-rs
    # MERGE commit, whose files hold strings as string views
    other = RunFolder(base / "other")
    run_ingest(str(synth(base / "src", 6, 2.0)), other, LocalRunner())
    known = run.table("clips").read(columns=["clip_id"])["clip_id"]
    rest = other.table("clips").read()
    rest = rest.filter(pc.invert(pc.is_in(rest["clip_id"], value_set=known)))
    DeltaTable(run.table("clips").uri).merge(rest, "t.clip_id = s.clip_id", source_alias="s", target_alias="t") \
        .when_not_matched_insert_all().execute()
    assert [h["operation"] for h in run.table("clips").history()] == ["MERGE", "CREATE TABLE"]  # newest first
    assert run.table("clips").num_rows() == 6
    assert any(pa.types.is_string_view(f.type) for path in run.table("clips").files() for f in pq.read_schema(path))
    return run


def test_ray_pass_commits_the_workers_files_once(ingested, tmp_path, ray_session):
    import shutil

    run = RunFolder(shutil.copytree(ingested.local_path, tmp_path / "run"))
    orphan = run.local_path / "annotations" / f"{PASS_FILE_PREFIX}00deadbeef-x.parquet"  # a pass that died
    orphan.parent.mkdir(parents=True)
    pq.write_table(pa.table({"clip_id": ["x"]}), orphan)
    config = AnnotateConfig(skip=tuple(CHEAP), batch_size=2)
    stats = run_annotate(run, RayRunner(), config)
    notes = run.table("annotations")
    assert stats.rows_in == stats.rows_out == 6 and notes.num_rows() == 6
    assert sorted(notes.read(columns=["clip_id"])["clip_id"].to_pylist()) == \
        sorted(run.table("clips").read(columns=["clip_id"])["clip_id"].to_pylist())
    # one commit holds every file the workers wrote; nothing else lies in the folder
    assert [h["operation"] for h in notes.history()] == ["CREATE TABLE"]
    committed = sorted(Path(f).name for f in notes.files())
    assert committed == pass_files(run, "annotations") and not orphan.exists()
    # the same rows as the in-process runner
    local = RunFolder(shutil.copytree(ingested.local_path, tmp_path / "local"))
    run_annotate(local, LocalRunner(), config)
    drop = ["producer"]
    assert local.table("annotations").read().drop_columns(drop).to_pylist() == notes.read().drop_columns(
        drop).to_pylist()
    # audio hours per wall-clock hour, per stage and per node
    d = stats.as_dict()
    assert d["audio_seconds"] == pytest.approx(12.0, abs=0.01)
    assert d["audio_hours_per_hour"] > 0 and d["items_per_s"] > 0
    (node, entries), = d["per_node"].items()
    assert set(entries) == {stage.name for stage in build_chain(config)}
    assert all(seconds == pytest.approx(12.0 / 3600 / stats.seconds * 3600, rel=0.01) for seconds in entries.values())
    # a second run owes nothing
    again = run_annotate(run, RayRunner(), config)
    assert again.skipped == 6 and again.rows_in == 0 and notes.version() == 0


def test_a_pass_commits_once_and_its_stray_files_are_removed(tmp_path):
    run = RunFolder(tmp_path / "run")
    table = run.table("rejects")
    folder = Path(table.uri)
    folder.mkdir(parents=True)
    rows = conform([{"item_id": i, "stage": "s", "reason_code": "r", "detail": "", "source": "", "producer": "t"}
                    for i in "ab"],
                   table.schema)
    names = []
    for i in range(3):  # two files the driver heard of, one from a task that died and was retried
        names.append(f"{PASS_FILE_PREFIX}0123abcd-{i}.parquet")
        pq.write_table(rows.slice(i % 2, 1), folder / names[-1])
    files = [(n, (folder / n).stat().st_size, 1) for n in names[:2]]
    assert table.commit_files(files, "0123abcd", {"stage": "t"})
    assert not table.commit_files(files, "0123abcd", {"stage": "t"})  # a retried commit is a no-op
    assert table.version() == 0 and table.num_rows() == 2
    assert table.remove_pass_files(keep=names[:2], pass_id="0123abcd") == 1
    assert sorted(p.name for p in folder.glob("*.parquet")) == names[:2]
    assert table.remove_pass_files() == 0  # committed passes keep their files
    assert sorted(table.read()["item_id"].to_pylist()) == ["a", "b"]


DRIVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[4])
    from dataflux.runners import LocalRunner
    from dataflux.runners.ray import RayRunner
    from dataflux.stages.annotate import AnnotateConfig, build_chain, run_annotate
    from dataflux.stages.generate import run_generate
    from dataflux.stages.verify import VerifyConfig, run_verify
    from storage.run_folder import RunFolder
    runner = RayRunner(address=sys.argv[2]) if sys.argv[3] == "ray" else LocalRunner()
    run = RunFolder(sys.argv[1])
    stats = run_annotate(run, runner, AnnotateConfig(skip=%r, batch_size=4, chunk_clips=64))
    if sys.argv[5] == "verify":  # every clip's audio again, joined to its questions
        run_generate(run)
        signal = {"backend": "analyzer", "stack": "signal"}
        stats = run_verify(run, runner, VerifyConfig(answerers=({"name": "a", **signal}, {"name": "b", **signal}),
                                                     batch_size=4, chunk_clips=64))
    # VmHWM, not ru_maxrss: on Linux a spawned child's ru_maxrss starts at its parent's peak
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    print(json.dumps({"peak_kb": int(hwm.split()[1]), "rows": stats.rows_out}))
""" % (CHEAP,))


def driver_peak(run: Path, address: str, runner: str = "ray", until: str = "annotate") -> dict:
    out = subprocess.run([sys.executable, "-c", DRIVER, str(run), address, runner, str(ROOT), until],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("until", ["annotate", "verify"])
def test_the_drivers_memory_does_not_grow_with_audio_length(tmp_path, ray_session, until):
    """16 clips of 2.5 s, then 16 clips of 25 s (about 23 MB more decoded audio on its way through the chain,
    400 s of audio in all): the driver's peak stays within 10%, through annotate, and through verify, where
    each clip's audio is joined to each of its questions. Each driver is its own process joining the
    session's cluster, so its peak is its own."""
    address = ray_session.get_runtime_context().gcs_address
    peaks = {}
    for seconds in (2.5, 25):
        run = RunFolder(tmp_path / f"run{seconds}")
        for n in (8, 16):  # a merge among the clips' commits
            run_ingest(str(synth(tmp_path / f"src{seconds}", n, seconds)), run, LocalRunner())
        result = driver_peak(run.local_path, address, until=until)
        assert run.table("annotations").num_rows() == 16
        if until == "verify":
            assert result["rows"] == run.table("questions").num_rows() > 16
        else:
            assert result["rows"] == 16
        peaks[seconds] = result["peak_kb"]
    assert peaks[25] <= 1.10 * peaks[2.5], peaks
