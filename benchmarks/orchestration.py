"""Prefect's overhead: the synthesize flow (Prefect tasks over shards, artifacts, cached results, the
published event) against calling the library directly (`run_pipeline`) with the same runner and
config, on 200 demo-sized clips. Both use the Ray runner; a local Prefect server is started here.

    python benchmarks/orchestration.py      # writes results/orchestration.json; target ratio >= 0.9
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import write_result  # noqa: E402

CONFIG = {"runner": "ray",
          "annotate": {"asr": {"model": "tiny.en", "language": "en"}, "threads": 1},
          "generate": {"writer": "template"},
          "verify": {"answerers": [{"name": "listener_a", "backend": "analyzer", "stack": "signal"},
                                   {"name": "listener_b", "backend": "analyzer", "stack": "signal"}],
                     "judge": {"backend": "rules"}}}


def make_clips(folder: Path, n: int) -> float:
    """`n` clips made from the demo's speech clips, each with its own faint noise (distinct content)."""
    from dataflux.audio import decode, to_mono_16k

    demo = sorted(p for p in (ROOT / "examples" / "demo_audio").iterdir() if "_en_" in p.name and "long" not in p.name)
    waves = [to_mono_16k(decode(p.read_bytes())) for p in demo]
    rng = np.random.default_rng(0)
    seconds = 0.0
    folder.mkdir(parents=True)
    for i in range(n):
        wave = waves[i % len(waves)] + rng.normal(0, 0.002, len(waves[i % len(waves)])).astype(np.float32)
        sf.write(folder / f"clip_{i:04d}.flac", np.clip(wave, -1, 1), 16000)
        seconds += len(wave) / 16000
    return seconds


def main(n: int = 200) -> None:
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    work = Path(tempfile.mkdtemp(prefix="dataflux-orch-"))
    try:
        audio_s = make_clips(work / "src", n)
        config = work / "bench.yaml"
        config.write_text(yaml.safe_dump({**CONFIG, "source": str(work / "src")}))

        from dataflux.config import load_config
        from dataflux.pipeline import run_pipeline

        start = time.perf_counter()
        run_pipeline(load_config(config, {"out": str(work / "direct")}))
        direct_s = time.perf_counter() - start

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.server import LocalPrefect

        with LocalPrefect(home=work / "prefect", worker=False) as prefect, \
                temporary_settings({PREFECT_API_URL: prefect.api_url}):
            from flows.synthesize import synthesize

            start = time.perf_counter()
            state = synthesize(config=str(config), run_dir=str(work / "flow"), return_state=True)
            flow_s = time.perf_counter() - start
            with get_client(sync_client=True) as client:
                tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
        from storage.run_folder import RunFolder

        same = RunFolder(work / "direct").counts() == RunFolder(work / "flow").counts()
        write_result("orchestration", "clips/s end to end through the synthesize flow (Prefect + Ray)", n / flow_s,
                     "the same stages called directly (run_pipeline), same runner and config", n / direct_s,
                     "ratio >= 0.9 (Prefect's overhead <= ~10%)", direct_s / flow_s >= 0.9,
                     flow_seconds=round(flow_s, 2), direct_seconds=round(direct_s, 2), clips=n,
                     audio_seconds=round(audio_s, 1),
                     task_runs=len(tasks), same_tables=same, runner="ray")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
