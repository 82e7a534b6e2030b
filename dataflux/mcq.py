"""The multiple-choice format, said once for writers, answerers, judges, filters, training and scoring:
the answer letters, how options are shown, reading the chosen letter out of free text, `<think>`
stripping, and the phrases that leak the question's source.

Letter extraction: anchored patterns first, then the option texts; otherwise unparsed (None). No random
fallback: an unparsed answer is wrong, never guessed."""

from __future__ import annotations

import re

LETTERS = "ABCD"

# A question or option naming where its answer came from gives the answer away (writer and filter).
QUESTION_LEAKAGE = re.compile(
    r"\b(caption|description|described|transcript|according to the (text|data)|measured|tags?)\b", re.I)
# Narrower for a reasoning target: a listener may say what it "measured" or "described", not cite its source.
REASONING_LEAKAGE = re.compile(r"\b(caption|description|transcript|according to the (text|data|tags))\b", re.I)

# Strongest first. Each captures one letter A-D that stands alone (not the article "A" in a sentence).
_ANCHORED = [
    re.compile(r"(?:final\s+answer|answer|choice|option)\s*(?:is|:|=|-)?\s*[\(\[\*]*\s*([A-D])\b(?![\w'])", re.I),
    re.compile(r"^\s*[\(\[\*]*([A-D])[\)\]\.\*:]*\s*$", re.M),          # a line holding only the letter
    re.compile(r"^\s*[\(\[\*]*([A-D])[\)\]\.:]\s", re.M),                # "B. A woman's voice" or "(B) ..."
    re.compile(r"\*\*\s*\(?([A-D])\)?\s*\*\*"),                          # **B**
]
_FINAL_LINE = re.compile(r"\n?\s*(?:final\s+)?answer\s*[:=]\s*[\(\[\*]*\s*[A-D]\b[\)\]\.\*]*\s*$", re.I)


def format_options(options: list[str]) -> str:
    """One "A. text" line per option."""
    return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(options))


def mcq_prompt(question: str, options: list[str]) -> str:
    """The question and its lettered options, as answerers and the trained model see them."""
    return f"{question}\n{format_options(options)}"


def malformed(question: str, options: list[str]) -> str | None:
    """Why a question is structurally unusable, or None."""
    if not question.strip():
        return "empty question"
    if len(options) != 4 or any(not o.strip() for o in options):
        return "needs four non-empty options"
    if len({o.strip().lower() for o in options}) != 4:
        return "options are not distinct"
    leak = QUESTION_LEAKAGE.search(question + " " + " ".join(options))
    if leak:
        return f"leaks the source: {leak.group(0)!r}"
    return None


def extract_letter(text: str | None, options: list[str] | None = None) -> tuple[str | None, str]:
    """(letter, how): how is "anchored", "option_text" or "unparsed".

    The last anchored match wins (models restate options before concluding); the patterns are tried
    strongest first so "The answer is C" beats an option list echoed above it.
    """
    if not text or not text.strip():
        return None, "unparsed"
    body = strip_think(text)
    for pattern in _ANCHORED:
        found = pattern.findall(body)
        if found:
            letter = found[-1].upper()
            if options is None or LETTERS.index(letter) < len(options):
                return letter, "anchored"
    if options:
        low = body.lower()
        hits = [i for i, opt in enumerate(options) if opt.strip() and _contains(low, opt.strip().lower())]
        if len(hits) == 1:
            return LETTERS[hits[0]], "option_text"
    return None, "unparsed"


def strip_think(text: str) -> str:
    """Drop a `<think>...</think>` block: the answer is what follows it."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    return text


def split_final_answer(reasoning: str) -> str:
    """The reasoning without its closing "Answer: X" line."""
    return _FINAL_LINE.sub("", reasoning.rstrip()).rstrip()


def _contains(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text) is not None
