"""Fundamental frequency with Praat's autocorrelation tracker (parselmouth)."""

from __future__ import annotations

import numpy as np

from dataflux.annotate.base import Analyzer
from dataflux.audio import TARGET_SR


class Pitch(Analyzer):
    name = "pitch"
    fields = {"f0_median_hz": "Hz", "f0_iqr_hz": "Hz", "f0_p10_hz": "Hz", "f0_p90_hz": "Hz",
              "voiced_ratio": "fraction of frames"}
    speech_only = True

    def __init__(self, floor_hz: float = 60.0, ceiling_hz: float = 500.0, resources=None):
        super().__init__(resources)
        self.floor_hz, self.ceiling_hz = floor_hz, ceiling_hz

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        import parselmouth

        track = parselmouth.Sound(audio.astype(np.float64), TARGET_SR).to_pitch_ac(
            pitch_floor=self.floor_hz, pitch_ceiling=self.ceiling_hz)
        f0 = track.selected_array["frequency"]
        voiced = f0[f0 > 0]
        if voiced.size < 5:
            return {"voiced_ratio": float(voiced.size / max(f0.size, 1))}
        p10, p25, p50, p75, p90 = np.percentile(voiced, [10, 25, 50, 75, 90])
        return {"f0_median_hz": float(p50), "f0_iqr_hz": float(p75 - p25), "f0_p10_hz": float(p10),
                "f0_p90_hz": float(p90), "voiced_ratio": float(voiced.size / f0.size)}
