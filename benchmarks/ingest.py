"""Ingest throughput: audio-seconds per wall-second, the runners against a plain loop.

The plain loop does the same per-file work (read, downmix, resample, hash, FLAC encode) with no
runner, no tables and no dedup, and writes one Parquet file at the end. Each contender gets one core:
the plain loop and the local runner are pinned to one CPU; the Ray runner gets one actor with
num_cpus=1 (its driver, which commits to the tables, is a separate process). Ray's start-up is
reported, not counted; Ray Data's fixed cost per stage (actor pool start, about 1.5 s here) is
counted, and shown on its own as the time to ingest one file. The workload (~4.9 h of audio) is the
size the Ray runner is for; on a few minutes of audio that fixed cost dominates.
Target: ratio >= 0.85 (runner overhead at most 15%).

    python benchmarks/ingest.py [--copies 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import best_of, write_result  # noqa: E402
from dataflux.audio import decode, encode_flac, pcm16_hash, to_mono_16k, to_pcm16  # noqa: E402
from dataflux.runners import LocalRunner  # noqa: E402
from dataflux.runners.ray import RayRunner  # noqa: E402
from dataflux.sources import list_source  # noqa: E402
from dataflux.stages.ingest import IngestConfig, run_ingest  # noqa: E402
from storage.run_folder import RunFolder  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo_audio"


def make_workload(folder: Path, copies: int) -> float:
    """Unique variants of the demo audio (gain changes, so dedup keeps them all); returns audio seconds."""
    import soundfile as sf

    seconds = 0.0
    for path in sorted(DEMO.iterdir()):
        d = decode(path.read_bytes())
        for k in range(copies):
            fmt = "FLAC" if k % 2 else "WAV"
            sf.write(folder / f"{path.stem}_{k:03d}.{fmt.lower()}", d.samples * (1 - 0.002 * k), d.sample_rate,
                     format=fmt, subtype="PCM_16")
            seconds += d.samples.shape[0] / d.sample_rate
    return seconds


def plain_loop(folder: Path, out: Path) -> None:
    rows = []
    for path in sorted(folder.iterdir()):
        pcm = to_pcm16(to_mono_16k(decode(path.read_bytes())))
        rows.append({"clip_id": pcm16_hash(pcm), "source_uri": str(path), "audio": encode_flac(pcm)})
    pq.write_table(pa.Table.from_pylist(rows), out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=100, help="variants of each demo file (default 100, ~4.9 h of audio)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dataflux-bench-ingest-"))
    try:
        src = work / "src"
        src.mkdir()
        audio_s = make_workload(src, args.copies)
        files = len(list_source(src))
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start_s = time.perf_counter() - start
        ray_runner = RayRunner()
        ray_config = IngestConfig(num_cpus=1, concurrency=1, batch_size=64)
        all_cpus = os.sched_getaffinity(0)
        one_cpu = {min(all_cpus)}
        counter = iter(range(1000))

        def fresh() -> RunFolder:
            return RunFolder(work / f"run{next(counter)}")

        def timed(fn, cpus) -> float:
            os.sched_setaffinity(0, cpus)
            try:
                return best_of(fn, 1)
            finally:
                os.sched_setaffinity(0, all_cpus)

        # Interleaved, so that drift in the machine's speed hits every contender alike; best of N each.
        times: dict[str, list[float]] = {"baseline": [], "local": [], "ray": []}
        for _ in range(args.repeats):
            times["baseline"].append(timed(lambda: plain_loop(src, work / f"plain{next(counter)}.parquet"), one_cpu))
            times["local"].append(timed(lambda: run_ingest(str(src), fresh(), LocalRunner()), one_cpu))
            times["ray"].append(timed(lambda: run_ingest(str(src), fresh(), ray_runner, ray_config), all_cpus))
        baseline_s, local_s, ray_s = (min(times[k]) for k in ("baseline", "local", "ray"))
        one_file = work / "one"
        one_file.mkdir()
        first = sorted(src.iterdir())[0]
        (one_file / first.name).write_bytes(first.read_bytes())
        ray_stage_start_s = best_of(lambda: run_ingest(str(one_file), fresh(), ray_runner, ray_config), 2)
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    baseline = audio_s / baseline_s
    local, ray_rate = audio_s / local_s, audio_s / ray_s
    worst = min(local, ray_rate)
    write_result(
        "ingest", "audio-seconds per wall-second", worst, "plain soundfile loop (same per-file work)", baseline,
        target="ratio >= 0.85 for both runners", passed=min(local, ray_rate) / baseline >= 0.85,
        files=files, audio_seconds=round(audio_s, 1), repeats=args.repeats,
        runners={"local": {"value": round(local, 2), "ratio": round(local / baseline, 4), "seconds": round(local_s, 3)},
                 "ray": {"value": round(ray_rate, 2), "ratio": round(ray_rate / baseline, 4),
                         "seconds": round(ray_s, 3), "ray_init_seconds": round(ray_start_s, 2),
                         "one_file_seconds": round(ray_stage_start_s, 3)}},
        baseline_seconds=round(baseline_s, 3))


if __name__ == "__main__":
    main()
