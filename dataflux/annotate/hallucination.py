"""Flags for Whisper transcripts that are likely hallucinated. A flagged transcript is kept, with why."""

from __future__ import annotations

import re
import zlib

# Phrases Whisper is known to produce on silence, music or noise (subtitle credits in its training data).
KNOWN_PHRASES = (
    "thank you for watching", "thanks for watching", "please subscribe", "like and subscribe",
    "subscribe to my channel", "subtitles by", "amara.org", "see you in the next video",
    "transcribed by", "translated by", "copyright", "www.", ".com",
)
MAX_COMPRESSION_RATIO = 2.4  # Whisper's own threshold for degenerate, repetitive output
MIN_REPEATS = 4  # an n-gram repeated this many times in a row
NO_SPEECH_PROB = 0.6
WORDS_OUTSIDE_SPEECH = 0.5  # fraction of word time that VAD calls non-speech


def check(text: str, no_speech_prob: float | None, words: list[dict], speech_segments: list[dict]) -> list[str]:
    """Reasons why `text` looks hallucinated; empty when it looks fine."""
    reasons = []
    lowered = text.lower()
    tokens = re.findall(r"[\w']+", lowered)
    if text and compression_ratio(text) > MAX_COMPRESSION_RATIO:
        reasons.append(f"compression ratio {compression_ratio(text):.2f} > {MAX_COMPRESSION_RATIO}")
    repeated = repeated_ngram(tokens)
    if repeated:
        reasons.append(f"repeated n-gram {repeated!r}")
    phrases = [p for p in KNOWN_PHRASES if p in lowered]
    if phrases:
        reasons.append(f"known hallucination phrase {phrases[0]!r}")
    if no_speech_prob is not None and no_speech_prob > NO_SPEECH_PROB and tokens:
        reasons.append(f"no-speech probability {no_speech_prob:.2f} > {NO_SPEECH_PROB}")
    outside = fraction_outside(words, speech_segments)
    if outside is not None and outside > WORDS_OUTSIDE_SPEECH:
        reasons.append(f"{outside:.0%} of word time lies outside VAD speech")
    return reasons


def compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data))


def repeated_ngram(tokens: list[str], max_n: int = 4) -> str | None:
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n * MIN_REPEATS + 1):
            gram = tokens[i:i + n]
            if all(tokens[i + k * n:i + (k + 1) * n] == gram for k in range(1, MIN_REPEATS)):
                return " ".join(gram)
    return None


def fraction_outside(words: list[dict], segments: list[dict]) -> float | None:
    total = sum(max(0.0, w["end_s"] - w["start_s"]) for w in words)
    if total <= 0:
        return None
    inside = sum(max(0.0, min(w["end_s"], s["end_s"]) - max(w["start_s"], s["start_s"]))
                 for w in words for s in segments)
    return max(0.0, 1 - inside / total)
