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
                 target: str, passed: bool, **extra) -> dict:
    """`ratio` = value / baseline_value; `target` says in words what `passed` checked."""
    result = {
        "name": name, "unit": unit, "value": round(value, 4), "baseline_name": baseline_name,
        "baseline_value": round(baseline_value, 4), "ratio": round(value / baseline_value, 4),
        "target": target, "passed": bool(passed), "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
        **extra,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result
