"""Speech activity with silero-vad (model bundled in the wheel)."""

from __future__ import annotations

import numpy as np

from dataflux.annotate.base import Analyzer, ModelLoadError
from dataflux.audio import TARGET_SR
from dataflux.stage import Resources


class SileroVad(Analyzer):
    name = "vad"
    fields = {"speech_ratio": "fraction of duration", "speech_segments": "s", "is_speech": ""}

    def __init__(self, threshold: float = 0.5, min_speech_ratio: float = 0.15, min_speech_s: float = 0.4,
                 resources: Resources | None = None):
        super().__init__(resources)
        self.threshold = threshold
        self.min_speech_ratio = min_speech_ratio
        self.min_speech_s = min_speech_s

    def setup(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            from silero_vad import load_silero_vad

            self.model = load_silero_vad()
        except Exception as e:
            raise ModelLoadError("annotate.vad", "silero-vad (bundled)", e) from e

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        import torch
        from silero_vad import get_speech_timestamps

        stamps = get_speech_timestamps(torch.from_numpy(audio.copy()), self.model, threshold=self.threshold,
                                       sampling_rate=TARGET_SR)
        segments = [{"start_s": s["start"] / TARGET_SR, "end_s": s["end"] / TARGET_SR} for s in stamps]
        speech_s = sum(s["end_s"] - s["start_s"] for s in segments)
        ratio = speech_s / (len(audio) / TARGET_SR)
        return {"speech_ratio": ratio, "speech_segments": segments,
                "is_speech": bool(ratio >= self.min_speech_ratio and speech_s >= self.min_speech_s)}
