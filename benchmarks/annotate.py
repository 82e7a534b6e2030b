"""Annotate speed on the demo audio: real-time factor per analyzer and for the whole stage; the Ray
runner against a plain loop calling the same models on the same clips; 1 vs 2 Ray workers.

- plain loop: every analyzer in turn on every clip, in this process, models loaded once, no runner,
  no tables (CTranslate2 and torch use their default threads, i.e. both cores).
- Ray, 1 worker: one actor per analyzer stage, one CPU thread each, so stages overlap on the 2 cores.
- Ray, 2 workers: the same with two actors for the model-backed analyzers.
Target: Ray (1 worker) >= 0.85 x the plain loop's throughput; 2 workers >= 1.5 x 1 worker.
Ray start-up is not counted; each stage run's actor start and model loads are.

    python benchmarks/annotate.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_result  # noqa: E402
from dataflux.annotate.asr import AsrConfig  # noqa: E402
from dataflux.runners import LocalRunner  # noqa: E402
from dataflux.runners.ray import RayRunner  # noqa: E402
from dataflux.stages.annotate import AnnotateConfig, analyzers, build_chain, run_annotate  # noqa: E402
from dataflux.stages.ingest import run_ingest  # noqa: E402
from storage.run_folder import RunFolder  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo_audio"
HEAVY = ("vad", "asr", "pitch", "gender", "speakers", "dnsmos")


def plain_loop(items: list[dict], config: AnnotateConfig) -> tuple[float, dict[str, float]]:
    """Returns wall seconds and seconds per analyzer (model loads excluded from both)."""
    stages = analyzers(build_chain(config))
    decode = build_chain(config)[0].stages[0]
    for s in stages:
        s.setup()
    per = defaultdict(float)
    start = time.perf_counter()
    rows = decode.process_batch(items).rows
    for s in stages:
        t = time.perf_counter()
        rows = s.process_batch(rows).rows
        per[s.name] += time.perf_counter() - t
    return time.perf_counter() - start, dict(per)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="dataflux-bench-annotate-"))
    try:
        source = RunFolder(work / "source")
        run_ingest(str(DEMO), source, LocalRunner())
        clips = source.table("clips").read()
        audio_s = sum(clips["duration_s"].to_pylist())
        items = clips.select(["clip_id", "audio"]).to_pylist()

        plain_s, per_analyzer = plain_loop(items, AnnotateConfig())

        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)

        def ray_run(workers: int) -> float:
            run = RunFolder(work / f"ray{workers}")
            shutil.copytree(work / "source" / "clips", work / f"ray{workers}" / "clips")
            resources = {name: {"concurrency": workers} for name in HEAVY}
            config = AnnotateConfig(asr=AsrConfig(cpu_threads=1), resources=resources)
            start = time.perf_counter()
            run_annotate(run, RayRunner(), config)
            return time.perf_counter() - start

        ray1_s = ray_run(1)
        ray2_s = ray_run(2)
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    plain, ray1, ray2 = audio_s / plain_s, audio_s / ray1_s, audio_s / ray2_s
    write_result(
        "annotate", "audio-seconds per wall-second", ray1, "plain loop over the same models", plain,
        target="Ray (1 worker each) / plain >= 0.85, and 2 workers / 1 worker >= 1.5",
        passed=ray1 / plain >= 0.85 and ray2 / ray1 >= 1.5,
        clips=len(items), audio_seconds=round(audio_s, 1),
        real_time_factor={"stage_plain_loop": round(plain_s / audio_s, 4),
                          **{name: round(sec / audio_s, 4) for name, sec in sorted(per_analyzer.items())}},
        ray_1_worker={"seconds": round(ray1_s, 2), "real_time_factor": round(ray1_s / audio_s, 4)},
        ray_2_workers={"seconds": round(ray2_s, 2), "real_time_factor": round(ray2_s / audio_s, 4),
                       "speedup_vs_1_worker": round(ray1_s / ray2_s, 3)},
        plain_seconds=round(plain_s, 2))


if __name__ == "__main__":
    main()
