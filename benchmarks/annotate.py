"""Annotate speed: real-time factor per analyzer and for the whole stage; the Ray runner against a
plain loop calling the same models on the same clips; Ray on 1 core against Ray on 2 cores.

Workload: the demo audio twice (the second copy 1 dB quieter, so every clip is new): 88 clips.
- plain loop, 1 core: every analyzer in turn over every clip, in this process; model loads counted.
- Ray, 1 worker: the process tree pinned to one core, one actor per analyzer stage.
- Ray, 2 workers: both cores, two actors for each model-backed analyzer.
Every model runs with one CPU thread. Ray's logical CPU count is set high enough for every actor of
the chain to be placed (it only schedules; the cores used are set by the CPU affinity).
Ray's own start is not counted; each stage run's actor start and model loads are.
Targets: Ray 1 worker / plain loop >= 0.85; Ray 2 workers / Ray 1 worker >= 1.5.

    python benchmarks/annotate.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_result  # noqa: E402
from dataflux.audio import decode  # noqa: E402
from dataflux.runners import LocalRunner  # noqa: E402
from dataflux.runners.ray import RayRunner  # noqa: E402
from dataflux.stages.annotate import AnnotateConfig, analyzers, build_chain, run_annotate  # noqa: E402
from dataflux.stages.ingest import run_ingest  # noqa: E402
from storage.run_folder import RunFolder  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo_audio"
HEAVY = ("vad", "asr", "pitch", "gender", "speakers", "dnsmos")
def plain_loop(items: list[dict], threads: int) -> tuple[float, dict[str, float]]:
    """Wall seconds (model loads included) and seconds per analyzer (loads excluded)."""
    start = time.perf_counter()
    chain = build_chain(AnnotateConfig(threads=threads))
    stages = [chain[0].stages[0], *analyzers(chain)]
    for s in stages:
        s.setup()
    per = defaultdict(float)
    rows = items
    for s in stages:
        t = time.perf_counter()
        rows = s.process_batch(rows).rows
        per[s.name] += time.perf_counter() - t
    return time.perf_counter() - start, dict(per)


def workload(folder: Path) -> None:
    for path in sorted(DEMO.iterdir()):
        (folder / path.name).write_bytes(path.read_bytes())
        d = decode(path.read_bytes())
        sf.write(folder / f"{path.stem}_quieter.flac", d.samples * 0.891, d.sample_rate, subtype="PCM_16")


def main() -> None:
    import ray

    work = Path(tempfile.mkdtemp(prefix="dataflux-bench-annotate-"))
    all_cpus = os.sched_getaffinity(0)
    try:
        src = work / "src"
        src.mkdir()
        workload(src)
        source = RunFolder(work / "source")
        run_ingest(str(src), source, LocalRunner())
        clips = source.table("clips").read()
        audio_s = sum(clips["duration_s"].to_pylist())
        items = clips.select(["clip_id", "audio"]).to_pylist()

        plain_s, per_analyzer = plain_loop(items, threads=0)
        os.sched_setaffinity(0, {min(all_cpus)})
        plain1_s, _ = plain_loop(items, threads=1)

        def ray_run(workers: int) -> float:
            ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False, configure_logging=False)
            run = RunFolder(work / f"ray{workers}")
            shutil.copytree(work / "source" / "clips", work / f"ray{workers}" / "clips")
            config = AnnotateConfig(threads=1, batch_size=2,
                                    resources={name: {"concurrency": workers} for name in HEAVY})
            start = time.perf_counter()
            stats = run_annotate(run, RayRunner(), config)
            elapsed = time.perf_counter() - start
            assert stats.rows_out == len(items)
            ray.shutdown()
            return elapsed

        ray1_s = ray_run(1)  # still pinned to one core: Ray's processes inherit it
        os.sched_setaffinity(0, all_cpus)
        ray2_s = ray_run(2)
    finally:
        os.sched_setaffinity(0, all_cpus)
        shutil.rmtree(work, ignore_errors=True)

    plain, plain1, ray1, ray2 = (audio_s / s for s in (plain_s, plain1_s, ray1_s, ray2_s))
    write_result(
        "annotate", "audio-seconds per wall-second", ray2, "plain loop over the same models, whole machine", plain,
        target="Ray 2 workers / plain loop >= 0.85 (whole machine each), and Ray 2 workers / 1 worker >= 1.5",
        passed=ray2 / plain >= 0.85 and ray2 / ray1 >= 1.5,
        one_core={"plain_loop_seconds": round(plain1_s, 2), "ray_1_worker_seconds": round(ray1_s, 2),
                  "ray_vs_plain": round(ray1 / plain1, 4)},
        clips=len(items), audio_seconds=round(audio_s, 1),
        real_time_factor={"stage_plain_loop": round(plain_s / audio_s, 4),
                          **{name: round(sec / audio_s, 4) for name, sec in sorted(per_analyzer.items())}},
        ray_1_worker={"seconds": round(ray1_s, 2), "real_time_factor": round(ray1_s / audio_s, 4)},
        ray_2_workers={"seconds": round(ray2_s, 2), "real_time_factor": round(ray2_s / audio_s, 4),
                       "speedup_vs_1_worker": round(ray1_s / ray2_s, 3)},
        plain_seconds=round(plain_s, 2))


if __name__ == "__main__":
    main()
