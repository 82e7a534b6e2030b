"""Word (or character) error rate with its parts, on normalised text (Whisper's English normaliser for
English, its basic normaliser otherwise), aligned by jiwer. Corpus WER = sum(S + D + I) / sum(N_ref); an
empty hypothesis is all deletions. Languages written without spaces between words are scored by
characters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files


@dataclass
class WerCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_words: int = 0
    empty_hypotheses: int = 0
    utterances: int = 0

    def __iadd__(self, other: "WerCounts") -> "WerCounts":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def wer(self) -> float:
        errors = self.substitutions + self.deletions + self.insertions
        return errors / self.reference_words if self.reference_words else float(errors > 0)


@lru_cache(maxsize=4)
def normalizer(language: str | None):
    """Whisper's English normaliser with its British-to-American spelling mapping (english.json, as the
    published WERs use it; shipped by the whisper-normalizer package), its basic normaliser otherwise."""
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    if language not in (None, "en"):
        return BasicTextNormalizer()
    spelling = json.loads(files("whisper_normalizer").joinpath("normalizers/english.json").read_text())
    return EnglishTextNormalizer(spelling)


CHAR_LANGUAGES = {"zh", "ja", "th"}


def word_errors(reference: str, hypothesis: str, language: str | None = "en") -> WerCounts:
    norm = normalizer(language)
    return _counts(norm(reference).split(), norm(hypothesis or "").split())


def char_errors(reference: str, hypothesis: str, language: str) -> WerCounts:
    """Characters instead of words, white space ignored."""
    norm = normalizer(language)
    ref, hyp = norm(reference), norm(hypothesis or "")
    return _counts([c for c in ref if not c.isspace()], [c for c in hyp if not c.isspace()])


def errors(reference: str, hypothesis: str, language: str | None = "en") -> WerCounts:
    """By characters for CHAR_LANGUAGES, by words otherwise."""
    if language in CHAR_LANGUAGES:
        return char_errors(reference, hypothesis, language)
    return word_errors(reference, hypothesis, language)


def _counts(ref: list[str], hyp: list[str]) -> WerCounts:
    """One minimal alignment of two token lists (tokens hold no white space). Ties between paths of equal
    cost are broken by jiwer, so S/D/I may split differently from another tool while S+D+I is the same."""
    import jiwer

    words = jiwer.ReduceToListOfListOfWords()
    out = jiwer.process_words(" ".join(ref), " ".join(hyp), reference_transform=words, hypothesis_transform=words)
    return WerCounts(out.substitutions, out.deletions, out.insertions, len(ref), int(not hyp), 1)

