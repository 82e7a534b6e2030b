import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from dataflux.audio import decode_flac
from dataflux.runners import LocalRunner
from dataflux.runners.ray import RayRunner
from dataflux.sources import list_source
from dataflux.stages.ingest import IngestConfig, run_ingest
from storage.run_folder import RunFolder
from tests.conftest import BAD_REASONS, DEMO_AUDIO, assert_accounted_once


def ingest(source, out, runner=None, config=IngestConfig()):
    run = RunFolder(out)
    stats = run_ingest(str(source), run, runner or LocalRunner(), config)
    return run, stats


def clip_table(run):
    return run.table("clips").read().drop_columns(["source_uri"])  # sources differ between tmp dirs


def test_demo_plus_bad_inputs_every_bad_file_gets_its_reason(tmp_path, mixed_source):
    run, stats = ingest(mixed_source, tmp_path / "run")
    rejects = {Path(r["item_id"]).name: r["reason_code"] for r in run.rejects("ingest").to_pylist()}
    assert rejects == BAD_REASONS
    assert len(set(BAD_REASONS.values())) == len(BAD_REASONS)  # each bad file its own reason code
    assert_accounted_once(run, mixed_source)
    demo_files = len(list(DEMO_AUDIO.iterdir()))
    assert stats.rows_in == demo_files + len(BAD_REASONS)
    assert stats.rows_out == run.table("clips").num_rows() == demo_files + 1  # the long clip splits in two
    assert sum(stats.rejected.values()) == len(BAD_REASONS)


def test_clips_are_16k_mono_flac_with_content_ids(tmp_path):
    run, _ = ingest(DEMO_AUDIO, tmp_path / "run")
    clips = run.table("clips").read().to_pylist()
    for clip in clips:
        samples, sr = decode_flac(clip["audio"])
        assert sr == 16000 and samples.ndim == 1 and len(samples) == clip["num_samples"]
        assert clip["clip_id"].startswith("clp_") and len(clip["clip_id"]) == 36
        assert clip["duration_s"] <= 30.0
    long_clip = [c for c in clips if "piper_long" in c["source_uri"]]
    assert [c["segment_index"] for c in sorted(long_clip, key=lambda c: c["segment_index"])] == [0, 1]
    assert {c["orig_format"] for c in clips} >= {"wav", "flac", "ogg", "mp3", "mp4"}
    assert {c["backend"] for c in clips} == {"soundfile", "pyav"}


def test_rerun_into_the_same_folder_adds_nothing(tmp_path, mixed_source):
    run, _ = ingest(mixed_source, tmp_path / "run")
    versions = (run.table("clips").version(), run.table("rejects").version())
    _, stats = ingest(mixed_source, tmp_path / "run")
    assert stats.rows_in == 0 and stats.skipped == len(list_source(mixed_source))
    assert (run.table("clips").version(), run.table("rejects").version()) == versions


def test_new_files_in_the_source_are_the_only_work_of_a_rerun(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = sorted(DEMO_AUDIO.iterdir())
    for f in files[:10]:
        (src / f.name).write_bytes(f.read_bytes())
    run, _ = ingest(src, tmp_path / "run")
    for f in files[10:15]:
        (src / f.name).write_bytes(f.read_bytes())
    _, stats = ingest(src, tmp_path / "run")
    assert stats.rows_in == 5 and stats.skipped == 10
    assert run.table("clips").num_rows() == 15
    assert run.table("clips").read(version=0).num_rows == 10  # time travel to before the new files


def test_duplicate_content_in_a_later_run_is_rejected(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    f = sorted(DEMO_AUDIO.iterdir())[0]
    (src / "a.flac").write_bytes(f.read_bytes())
    run, _ = ingest(src, tmp_path / "run")
    (src / "b.flac").write_bytes(f.read_bytes())
    ingest(src, tmp_path / "run")
    assert [(Path(r["item_id"]).name, r["reason_code"]) for r in run.rejects().to_pylist()] == [
        ("b.flac", "duplicate_content")]


def test_file_size_limit(tmp_path):
    run, _ = ingest(DEMO_AUDIO, tmp_path / "run", config=IngestConfig(max_file_mb=0.1))
    rejects = run.rejects("ingest")
    too_large = rejects.filter(pc.equal(rejects["reason_code"], "file_too_large"))
    sizes = [p.stat().st_size for p in DEMO_AUDIO.iterdir()]
    assert too_large.num_rows == sum(s > 100_000 for s in sizes) > 0
    assert_accounted_once(run, DEMO_AUDIO)


@pytest.mark.ray
def test_local_and_ray_runners_give_the_same_clips_table(tmp_path, mixed_source, ray_session):
    local, local_stats = ingest(mixed_source, tmp_path / "local")
    config = IngestConfig(batch_size=4, concurrency=2, num_cpus=0.5)
    ray_run, ray_stats = ingest(mixed_source, tmp_path / "ray", RayRunner(), config)
    assert clip_table(local).equals(clip_table(ray_run))
    assert local.rejects().equals(ray_run.rejects())
    # the same counts and audio seconds; timing and where it ran (throughput, per node) differ by runner
    placement = {"seconds", "items_per_s", "audio_hours_per_hour", "per_node", "nodes"}
    local_counts, ray_counts = ({k: v for k, v in s.as_dict().items() if k not in placement}
                                for s in (local_stats, ray_stats))
    assert local_counts == ray_counts and local_counts["audio_seconds"] > 0


def write_config(path: Path, **ingest) -> Path:
    path.write_text(yaml.safe_dump({"runner": "local", "ingest": ingest}))
    return path


def test_sigkill_mid_ingest_then_rerun_is_complete_without_duplicates(tmp_path, mixed_source):
    reference, _ = ingest(mixed_source, tmp_path / "reference")
    config = write_config(tmp_path / "c.yaml", batch_size=2, commit_rows=2)
    cmd = [sys.executable, "-m", "dataflux.cli", "ingest", str(mixed_source), "--out", str(tmp_path / "run"),
           "--config", str(config), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "run" / "clips" / "_delta_log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(log.glob("*.json")) if log.exists() else []) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = RunFolder(tmp_path / "run")
    partial = run.table("clips").num_rows()
    assert 0 < partial < reference.table("clips").num_rows(), "the kill did not land mid-ingest"
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert clip_table(run).equals(clip_table(reference))
    assert run.rejects().num_rows == reference.rejects().num_rows
    assert_accounted_once(run, mixed_source)
    info = run.read_run_json()
    assert [i["status"] for i in info["invocations"]] == ["running", "completed"]  # the killed one never ended
