"""Word error rate with its parts, on normalised text (Whisper's English normaliser for English,
its basic normaliser otherwise). Corpus WER = sum(S + D + I) / sum(N_ref); an empty hypothesis is all
deletions."""

from __future__ import annotations

from dataclasses import dataclass


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


def normalizer(language: str | None):
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    return EnglishTextNormalizer({}) if language in (None, "en") else BasicTextNormalizer()


def word_errors(reference: str, hypothesis: str, language: str | None = "en") -> WerCounts:
    norm = normalizer(language)
    ref, hyp = norm(reference).split(), norm(hypothesis or "").split()
    s, d, i = _align(ref, hyp)
    return WerCounts(s, d, i, len(ref), int(not hyp), 1)


def _align(ref: list[str], hyp: list[str]) -> tuple[int, int, int]:
    """Levenshtein alignment; returns (substitutions, deletions, insertions) of one optimal path."""
    rows, cols = len(ref) + 1, len(hyp) + 1
    cost = [[(0, 0, 0, 0)] * cols for _ in range(rows)]  # (total, S, D, I)
    for r in range(1, rows):
        cost[r][0] = (r, 0, r, 0)
    for c in range(1, cols):
        cost[0][c] = (c, 0, 0, c)
    for r in range(1, rows):
        for c in range(1, cols):
            if ref[r - 1] == hyp[c - 1]:
                cost[r][c] = cost[r - 1][c - 1]
                continue
            sub, dele, ins = cost[r - 1][c - 1], cost[r - 1][c], cost[r][c - 1]
            best = min((sub[0], 0), (dele[0], 1), (ins[0], 2))[1]
            t = (sub, dele, ins)[best]
            cost[r][c] = (t[0] + 1, t[1] + (best == 0), t[2] + (best == 1), t[3] + (best == 2))
    return cost[-1][-1][1:]
