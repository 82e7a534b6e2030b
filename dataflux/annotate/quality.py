"""Perceived quality: DNSMOS P.835 (SIG, BAK, OVRL) through speechmos (ONNX models in the wheel)."""

from __future__ import annotations

import numpy as np

from dataflux.annotate.base import Analyzer, ModelLoadError
from dataflux.audio import TARGET_SR


class Dnsmos(Analyzer):
    name = "dnsmos"
    fields = {"dnsmos_sig": "MOS 1-5", "dnsmos_bak": "MOS 1-5", "dnsmos_ovrl": "MOS 1-5"}

    def setup(self) -> None:
        try:
            from speechmos import dnsmos

            self.dnsmos = dnsmos
            self.dnsmos.run(np.zeros(TARGET_SR, np.float32) + 1e-4, sr=TARGET_SR)  # load the sessions now
        except Exception as e:
            raise ModelLoadError("annotate.dnsmos", "speechmos DNSMOS (bundled)", e) from e

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        scores = self.dnsmos.run(np.clip(audio, -1.0, 1.0), sr=TARGET_SR)  # input must lie in [-1, 1]
        return {"dnsmos_sig": float(scores["sig_mos"]), "dnsmos_bak": float(scores["bak_mos"]),
                "dnsmos_ovrl": float(scores["ovrl_mos"])}
