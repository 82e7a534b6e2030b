"""Transcript, language and word timings with Whisper, plus the hallucination guard.

Backends: `faster-whisper` (default; the bundled `base` or `tiny.en`, or any CTranslate2 Whisper
folder) and `transformers` (any transformers Whisper folder or hub id the user has locally).
"""

from __future__ import annotations

import numpy as np

from dataflux.annotate import hallucination
from dataflux.annotate.base import Analyzer, ModelLoadError
from dataflux.audio import TARGET_SR
from dataflux.models import whisper_model_path
from dataflux.settings import Section
from dataflux.stage import Resources
from dataflux.syllables import count_syllables


class AsrConfig(Section):
    model: str = "base"  # "base" / "tiny.en" (bundled), a CTranslate2 folder, or a transformers Whisper
    backend: str = "faster-whisper"  # or "transformers"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: CTranslate2 picks (all cores); set 1 per Ray actor when running several
    beam_size: int = 1
    language: str | None = None  # None: detect
    device: str = "cpu"


class Whisper(Analyzer):
    name = "asr"
    fields = {"transcript": "", "language": "ISO 639-1", "language_prob": "probability", "words": "s",
              "no_speech_prob": "probability", "avg_logprob": "nats per token",
              "hallucination_flag": "", "hallucination_reason": "", "asr_model": ""}
    speech_only = True

    def __init__(self, config: AsrConfig = AsrConfig(), resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=1.0, batch_size=4))
        self.config = config

    def setup(self) -> None:
        cfg = self.config
        try:
            if cfg.backend == "faster-whisper":
                from faster_whisper import WhisperModel

                self.model = WhisperModel(whisper_model_path(cfg.model), device=cfg.device,
                                          compute_type=cfg.compute_type, cpu_threads=cfg.cpu_threads)
            elif cfg.backend == "transformers":
                from transformers import pipeline

                self.model = pipeline("automatic-speech-recognition", model=cfg.model, device=cfg.device)
            else:
                raise ValueError(f"unknown ASR backend {cfg.backend!r}: choose faster-whisper or transformers")
        except Exception as e:
            raise ModelLoadError("annotate.asr.model", cfg.model, e) from e

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        if self.config.backend == "faster-whisper":
            out = self._faster_whisper(audio)
        else:
            out = self._transformers(audio)
        reasons = hallucination.check(out["transcript"], out.get("no_speech_prob"), out["words"],
                                      item.get("speech_segments") or [])
        return {**out, "hallucination_flag": bool(reasons), "hallucination_reason": "; ".join(reasons) or None,
                "asr_model": f"{self.config.backend}:{self.config.model}"}

    def _faster_whisper(self, audio: np.ndarray) -> dict:
        duration = len(audio) / TARGET_SR
        segments, info = self.model.transcribe(
            audio, beam_size=self.config.beam_size, language=self.config.language, word_timestamps=True,
            temperature=0.0, condition_on_previous_text=False,
            max_new_tokens=int(20 + 12 * min(duration, 30)))  # bounds a runaway, repetitive decode
        segments = list(segments)
        words = [{"word": w.word.strip(), "start_s": float(w.start), "end_s": float(w.end),
                  "prob": float(w.probability)} for s in segments for w in (s.words or [])]
        return {"transcript": " ".join(s.text.strip() for s in segments).strip(), "language": info.language,
                "language_prob": float(info.language_probability), "words": words,
                "no_speech_prob": max((s.no_speech_prob for s in segments), default=None),
                "avg_logprob": float(np.mean([s.avg_logprob for s in segments])) if segments else None}

    def _transformers(self, audio: np.ndarray) -> dict:
        """Segment timestamps, with word timings spread over each segment by character count.

        transformers 5.24's word-level timestamps fail under greedy decoding (its cross-attention
        alignment indexes an empty `beam_indices`), so words are placed within their segment instead.
        """
        generate = {"language": self.config.language} if self.config.language else {}
        out = self.model({"raw": audio, "sampling_rate": TARGET_SR}, return_timestamps=True,
                         generate_kwargs=generate)
        duration = len(audio) / TARGET_SR
        words = []
        for chunk in out.get("chunks", []):
            start, end = chunk["timestamp"]
            start = float(start or 0.0)
            end = float(end) if end is not None else duration
            tokens = chunk["text"].split()
            total = sum(len(t) for t in tokens) or 1
            for token in tokens:
                span = (end - start) * len(token) / total
                words.append({"word": token, "start_s": start, "end_s": start + span, "prob": None})
                start += span
        return {"transcript": out["text"].strip(), "language": self.config.language, "language_prob": None,
                "words": words, "no_speech_prob": None, "avg_logprob": None}


class SpeakingRate(Analyzer):
    """Words and syllables per second over the span from the first word's start to the last word's end."""

    name = "speaking_rate"
    fields = {"speech_rate_wps": "words/s", "speech_rate_sps": "syllables/s", "num_words": "words"}
    speech_only = True

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        words = [w for w in item.get("words") or [] if any(ch.isalnum() for ch in w["word"])]
        if len(words) < 2:
            return {"num_words": len(words)}
        span = words[-1]["end_s"] - words[0]["start_s"]
        if span <= 0:
            return {"num_words": len(words)}
        syllables = sum(count_syllables(w["word"]) for w in words)
        return {"speech_rate_wps": len(words) / span, "speech_rate_sps": syllables / span, "num_words": len(words)}
