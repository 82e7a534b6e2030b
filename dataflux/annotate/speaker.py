"""Speaker traits: gender (voice2gender, bundled XGBoost model) and who speaks when (speaker turns from
Resemblyzer embeddings: dataflux/annotate/diarize.py)."""

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


class Speakers(Analyzer):
    """Speaker turns (dataflux/annotate/diarize.py); the speaker count and the number of turns come from them."""

    name = "speakers"
    fields = {"num_speakers": "speakers", "num_turns": "turns", "speaker_turns": "s"}
    speech_only = True

    def __init__(self, same_speaker: float = 0.89, resources: Resources | None = None):
        super().__init__(resources)
        self.same_speaker = same_speaker

    def setup(self) -> None:
        import torch

        from dataflux.annotate.diarize import Diarizer

        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            from resemblyzer import VoiceEncoder

            self.diarize = Diarizer(VoiceEncoder("cpu", verbose=False), same_speaker=self.same_speaker)
        except Exception as e:
            raise ModelLoadError("annotate.speakers", "resemblyzer VoiceEncoder (bundled)", e) from e

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        turns = self.diarize(audio, item.get("speech_segments"))
        if not turns:
            return {"num_speakers": 1, "num_turns": 1,
                    "speaker_turns": [{"start_s": 0.0, "end_s": len(audio) / TARGET_SR, "speaker": 0}]}
        return {"num_speakers": len({t["speaker"] for t in turns}), "num_turns": len(turns), "speaker_turns": turns}
