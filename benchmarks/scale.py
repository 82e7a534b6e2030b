"""Growth: the synthesize flow (Prefect, a local server) on 10k and 100k one-second synthetic clips
with the cheapest embedded backends. Each size runs in its own process, which samples the resident
memory of itself and every child (Ray workers included) to report the peak.

    python benchmarks/scale.py                 # 10000 100000 (about 100 min on 2 cores); writes results/scale.json
    python benchmarks/scale.py 200 600         # a quick look (does not write the result)

Targets: wall time per clip flat (100k/10k per-clip ratio <= 1.1); the flow process's peak
private memory at 100k <= 1 GB (its metadata stays Arrow, its audio on the workers); peak memory of the
whole tree that does not grow with N beyond the tables themselves; every input accounted for; a bounded
number of Prefect task runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import write_result  # noqa: E402

RATE = 16000
CONFIG = {
    "runner": "ray",
    # The model-backed analyzers (Whisper, speaker embeddings, DNSMOS) are left out: the cheapest
    # embedded annotate chain is decode + levels, Silero VAD, SNR, pitch, gender, tags and caption.
    "annotate": {"skip": ["asr", "speakers", "dnsmos"], "threads": 1, "batch_size": 32},
    "generate": {"writer": "template"},
    "verify": {"answerers": [{"name": "listener_a", "backend": "analyzer", "stack": "signal"},
                             {"name": "listener_b", "backend": "analyzer", "stack": "signal"}],
               "judge": {"backend": "rules"}, "batch_size": 64, "threads": 1},
    "filter": {"max_rounds": 1},
}
SHARD_SIZE = 2500
MAX_SHARDS = 4
SIZES = (10000, 100000)


def synth_clip(i: int, seconds: float = 1.0) -> np.ndarray:
    """A distinct short clip: a voiced, syllable-modulated harmonic tone (speech-like) for most, a
    noise or a steady tone for the rest; pitch, rate and level vary with `i`."""
    rng = np.random.default_rng(i)
    t = np.arange(int(seconds * RATE)) / RATE
    kind = i % 10
    if kind == 8:
        wave = rng.normal(0, 0.05, t.size)
    elif kind == 9:
        wave = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
    else:
        f0 = rng.uniform(85, 280) * (1 + 0.05 * np.sin(2 * np.pi * 1.5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2.5, 6.5) * t + rng.uniform(0, 6)), 0, None) ** 0.7
        wave = 0.1 * rng.uniform(0.3, 2.5) * voiced * envelope + rng.normal(0, 0.003, t.size)
    return np.clip(wave, -1, 1).astype(np.float32)


def make_clips(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"  # no directory holds more than 1000 files
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"clip_{i:05d}.flac", synth_clip(i), RATE)


def memory(pid: int) -> tuple[int, int]:
    """(resident, private anonymous) bytes of one process. Resident memory also counts the shared pages
    of Ray's object store that the process has touched (bounded by the store's size, and counted again
    in every process); the anonymous part is the process's own heap."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return fields.get("VmRSS", 0), fields.get("RssAnon", 0)


def tree_memory(root: int, exclude: set[int] = frozenset()) -> tuple[int, int]:
    """memory() summed over `root` and all its descendants, leaving out the subtrees of `exclude`
    (the Prefect server: it is not the pipeline's memory)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    rss = anon = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        r, a = memory(pid)
        rss, anon = rss + r, anon + a
        todo.extend(children.get(pid, []))
    return rss, anon


def one_size(n: int, work: Path) -> dict:
    """Generate `n` clips, run the flow once; runs in its own process (see main)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    start = time.perf_counter()
    make_clips(work / "src", n)
    generate_s = time.perf_counter() - start
    config = work / "scale.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "source": str(work / "src")}))

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import LocalPrefect
    from storage.run_folder import RunFolder

    peak = {"tree": 0, "tree_anon": 0, "driver": 0, "driver_anon": 0}
    timeline = []  # every 5 s: [seconds into the flow, flow process private MB, tree private MB]
    stop = threading.Event()

    def sample():
        ticks = 0
        while not stop.wait(0.5):
            now = {"tree": tree_memory(os.getpid(), {p.pid for p in prefect.procs}), "driver": memory(os.getpid())}
            for name, (rss, anon) in now.items():
                peak[name], peak[f"{name}_anon"] = max(peak[name], rss), max(peak[f"{name}_anon"], anon)
            if ticks % 10 == 0:
                timeline.append([round(time.perf_counter() - start), now["driver"][1] >> 20, now["tree"][1] >> 20])
            ticks += 1

    with LocalPrefect(home=work / "prefect", worker=False) as prefect, \
            temporary_settings({PREFECT_API_URL: prefect.api_url}):
        from flows.synthesize import synthesize

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        state = synthesize(config=str(config), run_dir=str(work / "run"), shard_size=SHARD_SIZE,
                           max_shards=MAX_SHARDS, return_state=True)
        flow_s = time.perf_counter() - start
        stop.set()
        if not state.is_completed():
            raise RuntimeError(f"the flow ended {state.type}: {state.message}")
        with get_client(sync_client=True) as client:
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    run = RunFolder(work / "run")
    info = run.read_run_json()
    stages = {name: s.get("seconds") for name, s in info["invocations"][-1]["stages"].items()}
    counts = run.counts()
    accounted = counts.get("clips", 0) + len(run.rejects("ingest"))
    tables_mb = sum(f.stat().st_size for f in (work / "run").rglob("*.parquet")) / 2**20
    return {"clips": n, "seconds": round(flow_s, 2), "seconds_per_clip": round(flow_s / n, 5),
            "generate_audio_seconds": round(generate_s, 2), "stage_seconds": stages,
            **{f"peak_{name}_mb": round(value / 2**20) for name, value in peak.items()},
            "tables_mb": round(tables_mb, 1), "task_runs": len(tasks), "rows": counts,
            "inputs_accounted": accounted == n, "memory_timeline": timeline}


def main(sizes: list[int]) -> None:
    results = []
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"dataflux-scale-{n}-"))
        try:
            out = work / "result.json"
            code = ("import faulthandler, json, signal, sys; from pathlib import Path; "
                    "faulthandler.register(signal.SIGUSR1); from benchmarks.scale import one_size; "
                    f"Path({str(out)!r}).write_text(json.dumps(one_size({n}, Path({str(work)!r}))))")
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
            results.append(json.loads(out.read_text()))
            print(json.dumps(results[-1]), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if sizes != list(SIZES):
        return
    small, big = results
    per_clip_ratio = big["seconds_per_clip"] / small["seconds_per_clip"]
    # Memory: the private (anonymous) memory of the flow process and its Ray workers, at its peak; the
    # shared object-store pages are bounded by Ray's store size whatever N is (both are reported).
    memory_ratio = big["peak_tree_anon_mb"] / small["peak_tree_anon_mb"]
    driver_mb = big["peak_driver_anon_mb"]
    bounded_tasks = all(r["task_runs"] <= 2 + MAX_SHARDS + (2 * MAX_SHARDS + 1) * (CONFIG["filter"]["max_rounds"] + 2)
                        for r in results)
    write_result("scale", "wall seconds per clip, 100k clips, synthesize flow", big["seconds_per_clip"],
                 "wall seconds per clip, 10k clips", small["seconds_per_clip"],
                 "per-clip ratio 100k/10k <= 1.1; flow process peak private memory at 100k <= 1024 MB; peak "
                 "private memory (flow process + Ray workers) 100k/10k <= 1.5; task runs bounded; every input "
                 "accounted for",
                 per_clip_ratio <= 1.1 and driver_mb <= 1024 and memory_ratio <= 1.5
                 and bounded_tasks and all(r["inputs_accounted"] for r in results),
                 driver_peak_anon_mb_100k=driver_mb, memory_ratio=round(memory_ratio, 3),
                 driver_memory_ratio=round(driver_mb / small["peak_driver_anon_mb"], 3),
                 task_runs_bounded=bounded_tasks, runs=results,
                 config=CONFIG, shard_size=SHARD_SIZE, max_shards=MAX_SHARDS)

if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or list(SIZES))
