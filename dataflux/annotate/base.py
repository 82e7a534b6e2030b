"""The analyzer contract: fields with units, speech-only analyzers, failures that stay local.

Items flowing through the annotate chain carry the clip's decoded audio once (`pcm`, float32 bytes,
16 kHz), and every analyzer adds its fields. An analyzer that fails on a clip leaves its fields null
and records why under `errors`; a speech analyzer on a clip without speech records why under
`skipped`. Neither stops the other analyzers.
"""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np

from dataflux.stage import Resources, Result, Stage


class ModelLoadError(RuntimeError):
    """A model could not load: the stage fails at once, naming the model and the config key."""

    def __init__(self, config_key: str, model: str, cause: BaseException):
        super().__init__(f"annotate could not load the model {model!r} chosen by `{config_key}`: "
                         f"{type(cause).__name__}: {cause}")


class Analyzer(Stage):
    version = "1"
    inputs = ("clip_id", "pcm")
    fields: ClassVar[dict[str, str]]  # field name -> unit ("" for none)
    speech_only: ClassVar[bool] = False

    threads: int = 0  # CPU threads for the analyzer's model; 0: the library's default (every core)

    def __init__(self, resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.25, batch_size=8))

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        raise NotImplementedError

    def process_batch(self, items: list[dict]) -> Result:
        rows = []
        for item in items:
            row = dict(item)
            if self.speech_only and not item.get("is_speech"):
                row.update(dict.fromkeys(self.fields))
                note(row, "skipped", self.name, "no speech detected (VAD)")
            else:
                try:
                    values = self.analyze(audio_of(item), item)
                    row.update({name: values.get(name) for name in self.fields})
                except Exception as e:  # one analyzer failing on one clip must not stop the others
                    row.update(dict.fromkeys(self.fields))
                    note(row, "errors", self.name, f"{type(e).__name__}: {e}"[:500])
            rows.append(row)
        return Result(rows)


def audio_of(item: dict) -> np.ndarray:
    return np.frombuffer(item["pcm"], dtype=np.float32)


def note(row: dict, column: str, analyzer: str, reason: str) -> None:
    """Add `analyzer: reason` to a JSON object column (`errors` or `skipped`)."""
    notes = json.loads(row.get(column) or "{}")
    notes[analyzer] = reason
    row[column] = json.dumps(notes, sort_keys=True)


def dbfs(power: float) -> float | None:
    return None if power <= 0 else float(10 * np.log10(power))
