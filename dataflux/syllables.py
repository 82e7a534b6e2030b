"""Syllables of a written word, the unit speaking rate is measured in.

Core, not an analyzer: the annotator and the independent verify listener both turn their own ASR
model's words into syllables per second, and the speaking-rate bins they share (`TagThresholds`) are
in this unit, so the rule that counts them is one definition, not a measurement."""

from __future__ import annotations

import re

_VOWEL_GROUPS = re.compile(r"[aeiouyàâäéèêëîïôöùûüáíóúñ]+")


def count_syllables(word: str) -> int:
    """Vowel groups, a silent final 'e' dropped: an approximation that is good for English."""
    w = word.lower()
    n = len(_VOWEL_GROUPS.findall(w))
    if n > 1 and w.endswith("e") and not w.endswith(("le", "ee")):
        n -= 1
    return max(1, n)
