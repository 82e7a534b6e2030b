"""Run the synthesize flow in its own process against a real Prefect server, watch its log lines as
they arrive, and kill it (or what it talks to) at chosen moments."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from storage.run_folder import RunFolder
from tests.conftest import BAD_INPUTS, DEMO_AUDIO, ROOT

STAGES = ("ingest", "annotate", "generate", "verify", "filter", "publish")
# Cheap but complete: Silero VAD, pitch, gender and the signal measures; no Whisper, no DNSMOS.
CHEAP_ANNOTATE = {"skip": ["asr", "speakers", "dnsmos"], "threads": 1}


def small_source(folder: Path, clips: int = 8) -> Path:
    """`clips` English demo clips and two bad inputs (each ends as a reject)."""
    folder.mkdir(parents=True)
    for p in sorted(DEMO_AUDIO.glob("0[0-2]*_en_*"))[:clips]:
        shutil.copy(p, folder / p.name)
    for name in ("corrupt_flac.flac", "all_silence.wav"):
        shutil.copy(BAD_INPUTS / name, folder / name)
    return folder


def write_config(path: Path, source: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump({"source": str(source), "runner": "local", "annotate": CHEAP_ANNOTATE,
                                    "generate": {"writer": "template"}, **sections}))
    return path


class FlowProcess:
    """`synthesize(config, run_dir)` in a child process; its output lines are kept with arrival times."""

    def __init__(self, config: Path, run_dir: Path, env: dict[str, str]):
        code = ("from flows.synthesize import synthesize; "
                f"synthesize(config={str(config)!r}, run_dir={str(run_dir)!r})")
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip()))

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for(self, pattern: str, timeout_s: float) -> float | None:
        """When a line matching `pattern` arrived; None if the process ended (or time ran out) first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            lines = self.lines[seen:]
            for at, line in lines:
                if rx.search(line):
                    return at
            seen += len(lines)
            if self.proc.poll() is not None and not self.reader.is_alive() and seen == len(self.lines):
                return None
            time.sleep(0.02)
        return None

    def sleep_until(self, moment: float) -> None:
        """Wait until time.monotonic() reaches `moment`, or the process ends."""
        while time.monotonic() < moment and self.proc.poll() is None:
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL the flow process and whatever it started (its whole process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.reader.join(5)

    def finish(self, timeout_s: float = 600) -> int:
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.reader.join(5)
        return code


def stage_durations(lines: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds from each stage's first 'starting' line to its first 'Finished' line."""
    started, took = {}, {}
    for at, line in lines:
        m = re.search(r"Task run '(\w+)\[", line)
        if not m:
            continue
        stage = m.group(1)
        if "starting shard" in line:
            started.setdefault(stage, at)
        elif "Finished in state" in line and stage in started:
            took.setdefault(stage, at - started[stage])
    return took


def finished_at(lines: list[tuple[float, str]], stage: str, after: float) -> float | None:
    """When a task of `stage` logged its 'Finished' line after `after` (None: it did not finish)."""
    for at, line in lines:
        if at >= after and f"Task run '{stage}[" in line and "Finished in state" in line:
            return at
    return None


def corpus_rows(run_dir: Path) -> list[dict]:
    return RunFolder(run_dir).table("corpus").read().to_pylist()
