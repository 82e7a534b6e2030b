"""Cheap signal measurements: decoding, levels, loudness, clipping, SNR."""

from __future__ import annotations

import numpy as np

from dataflux.annotate.base import Analyzer, dbfs
from dataflux.audio import TARGET_SR, decode_flac, spectral_flatness
from dataflux.stage import Resources, Result, Stage


class DecodeClips(Stage):
    """FLAC bytes -> float32 PCM, once per clip for the whole annotate chain."""

    name = "decode"
    version = "1"
    inputs = ("clip_id", "audio")

    def __init__(self, resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.25, batch_size=8))

    def process_batch(self, items: list[dict]) -> Result:
        result = Result()
        for item in items:
            try:
                samples, sr = decode_flac(item["audio"])
                if sr != TARGET_SR or samples.ndim != 1:
                    raise ValueError(f"{sr} Hz, {samples.ndim} dims; clips are stored as 16 kHz mono")
            except Exception as e:  # a damaged clips table: account for the clip, do not stop the run
                result.rejects.append({**self.reject(item["clip_id"], "undecodable_clip", str(e)[:500]),
                                       "stage": "annotate"})
                continue
            result.rows.append({"clip_id": item["clip_id"], "pcm": samples.astype(np.float32).tobytes(),
                                "errors": None, "skipped": None})
        return result


class Levels(Analyzer):
    name = "levels"
    fields = {"duration_s": "s", "rms_dbfs": "dBFS", "peak_dbfs": "dBFS", "loudness_lufs": "LUFS",
              "clipping_ratio": "fraction of samples", "spectral_flatness": "0 (tonal) .. 1 (white noise)"}
    CLIP_LEVEL = 0.999  # |x| at or above this counts as clipped

    def setup(self) -> None:
        import pyloudnorm

        self.meter = pyloudnorm.Meter(TARGET_SR)  # ITU-R BS.1770-4, K-weighted, gated

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        x = audio.astype(np.float64)
        lufs = None
        if len(x) >= int(0.4 * TARGET_SR):  # BS.1770 needs one 400 ms gating block
            value = self.meter.integrated_loudness(x)
            lufs = float(value) if np.isfinite(value) else None
        return {"duration_s": len(x) / TARGET_SR, "rms_dbfs": dbfs(float(np.mean(x ** 2))),
                "peak_dbfs": dbfs(float(np.max(np.abs(x))) ** 2), "loudness_lufs": lufs,
                "clipping_ratio": float(np.mean(np.abs(x) >= self.CLIP_LEVEL)),
                "spectral_flatness": spectral_flatness(x)}


class Snr(Analyzer):
    """SNR from the VAD segments: speech power over the power outside speech.

    Without enough non-speech (< 0.2 s), the noise floor is the 10th percentile of 20 ms frame powers.
    """

    name = "snr"
    fields = {"snr_db": "dB"}
    speech_only = True

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        mask = np.zeros(len(audio), bool)
        for seg in item.get("speech_segments") or []:
            mask[int(seg["start_s"] * TARGET_SR):int(seg["end_s"] * TARGET_SR)] = True
        x = audio.astype(np.float64)
        speech = np.mean(x[mask] ** 2) if mask.any() else np.mean(x ** 2)
        if (~mask).sum() >= 0.2 * TARGET_SR:
            noise = np.mean(x[~mask] ** 2)
        else:
            frame = int(0.02 * TARGET_SR)
            frames = x[: len(x) // frame * frame].reshape(-1, frame)
            noise = np.percentile((frames ** 2).mean(axis=1), 10)
        return {"snr_db": float(10 * np.log10(max(speech, 1e-12) / max(noise, 1e-12)))}
