"""Perceived quality: DNSMOS P.835 (SIG, BAK, OVRL) through speechmos (ONNX models in the wheel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataflux.annotate.base import Analyzer, ModelLoadError
from dataflux.audio import TARGET_SR


class Dnsmos(Analyzer):
    """speechmos's scorer with our own ONNX sessions, so that the thread count is ours to set (one per
    Ray actor; 0 lets onnxruntime use every core). Clips shorter than 9 s are looped to 9 s by DNSMOS."""

    name = "dnsmos"
    fields = {"dnsmos_sig": "MOS 1-5", "dnsmos_bak": "MOS 1-5", "dnsmos_ovrl": "MOS 1-5"}

    def __init__(self, threads: int = 0, resources=None):
        super().__init__(resources)
        self.threads = threads

    def setup(self) -> None:
        try:
            import onnxruntime as ort
            from speechmos import dnsmos

            folder = Path(dnsmos.__file__).parent / "dnsmos_models"
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            model = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)
            model.primary_model_path = str(folder / "sig_bak_ovr.onnx")
            model.onnx_sess = ort.InferenceSession(model.primary_model_path, options,
                                                   providers=["CPUExecutionProvider"])
            model.p808_onnx_sess = ort.InferenceSession(str(folder / "model_v8.onnx"), options,
                                                        providers=["CPUExecutionProvider"])
            self.model = model
        except Exception as e:
            raise ModelLoadError("annotate.dnsmos", "speechmos DNSMOS (bundled)", e) from e

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        scores = self.model(np.clip(audio, -1.0, 1.0), TARGET_SR, False)  # input must lie in [-1, 1]
        return {"dnsmos_sig": float(scores["sig_mos"]), "dnsmos_bak": float(scores["bak_mos"]),
                "dnsmos_ovrl": float(scores["ovrl_mos"])}
