"""Consistency filters on judged items, and the answer-position balance.

Structural checks: four distinct options, the target letter names exactly one option, the
reasoning's final answer equals that letter, no leakage phrases. Corpus-level: exact and near
duplicate questions per clip, a cap per taxonomy node, and a deterministic option shuffle that
spreads the right answer evenly over A-D while keeping the key right.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from rapidfuzz import fuzz

from dataflux.mcq import LETTERS, REASONING_LEAKAGE, extract_letter, malformed, split_final_answer


def structural(question: str, options: list[str], letter: str | None, reasoning: str) -> tuple[str, str] | None:
    """(reason_code, detail) for an item that must not be kept, or None."""
    problem = malformed(question, options)
    if problem:
        return ("leakage" if problem.startswith("leaks") else "malformed_question"), problem
    if letter is None or letter not in LETTERS[:len(options)]:
        return "no_target", f"the target letter {letter!r} names no option"
    said, _ = extract_letter(reasoning, options)
    if said != letter:
        return "reasoning_mismatch", f"the reasoning concludes {said!r}, the target is {letter}"
    leak = REASONING_LEAKAGE.search(reasoning)
    if leak:
        return "leakage", f"the reasoning cites its source: {leak.group(0)!r}"
    return None


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class Deduplicator:
    """Per clip: the same question with the same options, or a question text at least `threshold`
    similar to one already kept, is a duplicate. Similarity is rapidfuzz's ratio on normalised text,
    2 * LCS / (len a + len b): difflib's ratio with the longest common subsequence in place of its
    greedy matching blocks, so never lower than difflib's (equal on 95 % of question pairs tried)."""

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold
        self.seen: dict[str, list[tuple[str, frozenset]]] = {}

    def add(self, clip_id: str, question: str, options: list[str]) -> str | None:
        """Record a kept question; return why it duplicates an earlier one (and then record nothing)."""
        q, opts = normalise(question), frozenset(normalise(o) for o in options)
        for other_q, other_opts in self.seen.get(clip_id, []):
            if q == other_q and opts == other_opts:
                return "exact duplicate of a kept question on this clip"
            ratio = fuzz.ratio(q, other_q) / 100
            if ratio >= self.threshold:
                return f"near duplicate ({ratio:.2f} similar) of a kept question on this clip"
        self.seen.setdefault(clip_id, []).append((q, opts))
        return None


class Balancer:
    """Each kept item's right option moves to the letter used least so far (ties broken by a hash of
    the question id), the other options keeping their order; the counts start from the kept corpus."""

    def __init__(self, counts: Counter | None = None):
        self.counts = Counter({letter: 0 for letter in LETTERS}) + (counts or Counter())
        for letter in LETTERS:
            self.counts.setdefault(letter, 0)

    def place(self, question_id: str, options: list[str], letter: str) -> tuple[list[str], str, dict[str, str]]:
        """(new options, new letter, old->new letter mapping)."""
        target = min(LETTERS[:len(options)], key=lambda x: (
            self.counts[x], hashlib.sha256(f"{question_id}|{x}".encode()).hexdigest()))
        correct = LETTERS.index(letter)
        others = [i for i in range(len(options)) if i != correct]
        order = others[:LETTERS.index(target)] + [correct] + others[LETTERS.index(target):]
        self.counts[target] += 1
        mapping = {LETTERS[old]: LETTERS[new] for new, old in enumerate(order)}
        return [options[i] for i in order], target, mapping


_LETTER_REFS = re.compile(r"((?:option|answer|choice)\s*(?:is\s*|:\s*)?[\(\[]?)([A-D])\b|\(([A-D])\)", re.I)


def relabel(reasoning: str, mapping: dict[str, str]) -> str:
    """Rewrite the reasoning's letter references ("option B", "(B)", "Answer: B") after a shuffle."""
    def swap(m: re.Match) -> str:
        if m.group(2):
            return m.group(1) + mapping.get(m.group(2).upper(), m.group(2))
        return f"({mapping.get(m.group(3).upper(), m.group(3))})"

    return _LETTER_REFS.sub(swap, reasoning)


def target_text(reasoning: str, letter: str) -> str:
    body = split_final_answer(reasoning)
    return f"{body}\nAnswer: {letter}" if body else f"Answer: {letter}"


def letter_balance(counts: Counter) -> dict:
    """Counts per letter and a chi-square test of uniformity (p < 0.01: unbalanced)."""
    from scipy.stats import chisquare

    observed = [counts.get(letter, 0) for letter in LETTERS]
    total = sum(observed)
    p = float(chisquare(observed).pvalue) if total >= 4 else 1.0
    return {"counts": dict(zip(LETTERS, observed)), "chi2_p": round(p, 6), "balanced": p >= 0.01}
