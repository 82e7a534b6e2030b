"""Speaker traits: gender (voice2gender, bundled XGBoost model) and the number of speakers
(Resemblyzer speaker embeddings over sliding windows, then agglomerative clustering)."""

from __future__ import annotations

import numpy as np

from dataflux.annotate.base import Analyzer, ModelLoadError
from dataflux.audio import TARGET_SR, to_pcm16
from dataflux.stage import Resources


def speech_only_audio(audio: np.ndarray, item: dict) -> np.ndarray:
    """The clip with its non-speech parts (per VAD) cut out."""
    segments = item.get("speech_segments") or []
    if not segments:
        return audio
    return np.concatenate([audio[int(s["start_s"] * TARGET_SR):int(s["end_s"] * TARGET_SR)] for s in segments])


class Gender(Analyzer):
    """voice2gender's verdict, unless it is unsure (confidence < 0.6): then the clip's median F0 decides
    when it is clearly on one side (below 150 Hz male, above 180 Hz female: adult speaking F0 is about
    85-155 Hz for men and 165-255 Hz for women). `gender_source` records which one decided; the
    confidence is always voice2gender's."""

    name = "gender"
    fields = {"gender": "male|female", "gender_confidence": "0-1", "gender_source": "voice2gender|f0_rule"}
    speech_only = True
    MODEL_RATE = 44100  # voice2gender's features are computed on 44.1 kHz int16 audio
    MIN_CONFIDENCE = 0.6
    MALE_BELOW_HZ, FEMALE_ABOVE_HZ = 150.0, 180.0

    def setup(self) -> None:
        try:
            import voice2gender

            self.predict = voice2gender.predict
        except Exception as e:
            raise ModelLoadError("annotate.gender", "voice2gender (bundled)", e) from e

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        import soxr

        speech = soxr.resample(speech_only_audio(audio, item), TARGET_SR, self.MODEL_RATE)
        result = self.predict([to_pcm16(speech).tobytes()], self.MODEL_RATE)
        gender = "female" if result["female_probability"] >= 0.5 else "male"
        source = "voice2gender"
        f0 = item.get("f0_median_hz")
        if result["confidence"] < self.MIN_CONFIDENCE and f0 is not None:
            by_f0 = "male" if f0 < self.MALE_BELOW_HZ else "female" if f0 > self.FEMALE_ABOVE_HZ else None
            if by_f0:
                gender, source = by_f0, "f0_rule"
        return {"gender": gender, "gender_confidence": float(result["confidence"]), "gender_source": source}


class SpeakerCount(Analyzer):
    """Clusters 1.6 s partial embeddings; clips with fewer than 2 partials have one speaker."""

    name = "speakers"
    fields = {"num_speakers": "speakers"}
    speech_only = True

    def __init__(self, distance_threshold: float = 0.45, resources: Resources | None = None):
        super().__init__(resources)
        # Average-linkage cosine distance at which clusters stay apart. On the demo voices one voice merges
        # below 0.39 (even across pitch levels) and two voices only above 0.54.
        self.distance_threshold = distance_threshold

    def setup(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            from resemblyzer import VoiceEncoder

            self.encoder = VoiceEncoder("cpu", verbose=False)
        except Exception as e:
            raise ModelLoadError("annotate.speakers", "resemblyzer VoiceEncoder (bundled)", e) from e

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        from scipy.cluster.hierarchy import fcluster, linkage

        speech = speech_only_audio(audio, item)
        if len(speech) < 2 * TARGET_SR:
            return {"num_speakers": 1}
        _, partials, _ = self.encoder.embed_utterance(speech.astype(np.float32), return_partials=True)
        if len(partials) < 2:
            return {"num_speakers": 1}
        tree = linkage(partials, method="average", metric="cosine")
        labels = fcluster(tree, t=self.distance_threshold, criterion="distance")
        return {"num_speakers": int(len(set(labels)))}
