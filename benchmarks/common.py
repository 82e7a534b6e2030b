"""Shared by every benchmark: time things, and write `benchmarks/results/NAME.json`."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn, repeats: int = 3) -> float:
    """Best wall time of `repeats` calls: the least disturbed by other load on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def write_result(name: str, unit: str, value: float, baseline_name: str, baseline_value: float,
                 target: str, passed: bool, path: Path | None = None, **extra) -> dict:
    """`ratio` = value / baseline_value (None when the baseline is 0); `target` says in words what `passed`
    checked. Written to `path`, by default `benchmarks/results/NAME.json`."""
    result = {
        "name": name, "unit": unit, "value": round(value, 4), "baseline_name": baseline_name,
        "baseline_value": round(baseline_value, 4),
        "ratio": round(value / baseline_value, 4) if baseline_value else None,
        "target": target, "passed": bool(passed), "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
        **extra,
    }
    path = Path(path or RESULTS / f"{name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result
