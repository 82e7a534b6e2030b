"""How much a piece of work grows a fresh process's peak private memory (RssAnon), in MB: the work runs in
a child Python process, as a user's process would, sampled every 5 ms."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def anon_mb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon")) >> 10


def grew_mb(work) -> int:
    """Run `work()` here; the growth of this process's peak private memory while it ran."""
    before = peak = anon_mb()
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, anon_mb())

    threading.Thread(target=sample, daemon=True).start()
    try:
        work()
    finally:
        done.set()
    return max(peak, anon_mb()) - before


def child_grew_mb(script: str, *args: str) -> int:
    """Run `script` (which prints `grew_mb(...)` last) in a child Python process; what it printed."""
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    return int(out.split()[-1])
