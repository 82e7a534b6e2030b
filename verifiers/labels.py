"""From measurements to a taxonomy leaf's label, and from a label to the one option that says it.

Labels come from the same bins the annotate stage tags with (`TagThresholds`), so an answerer and
the tags speak one vocabulary. An option "says" a label when one of the label's patterns matches it
after negated clauses ("without speech", "nobody speaks") are cut away; a label that no option, or
more than one option, says gives no answer (the answerer abstains).
"""

from __future__ import annotations

import math
import re

from dataflux.annotate.tags import TagThresholds, level
from dataflux.languages import LANGUAGE_NAMES

_P = dict[str, list[str]]
PATTERNS: dict[str, _P] = {
    "speaker_gender": {"male": [r"\bman\b", r"\bman's\b", r"\bmale\b", r"\bmasculine\b", r"\bmen\b"],
                       "female": [r"\bwoman\b", r"\bwoman's\b", r"\bfemale\b", r"\bfeminine\b", r"\bwomen\b"]},
    "pitch_relative_to_gender": {"low": [r"\blow\b", r"\bdeep\b", r"\blower\b"],
                                 "medium": [r"\baverage\b", r"\bmedium\b", r"\bmoderate\b", r"\btypical\b",
                                            r"\bmid"],
                                 "high": [r"\bhigh\b", r"\bhigher\b", r"\bhigh-pitched\b", r"\bshrill\b"]},
    "speaking_rate_level": {"slow": [r"\bslow(ly)?\b", r"\bunhurried\b", r"\bleisurely\b"],
                            "normal": [r"\bordinary\b", r"\bnormal\b", r"\bmoderate\b", r"\baverage\b",
                                       r"\bnatural\b", r"\bsteady\b"],
                            "fast": [r"\bfast\b", r"\bquick(ly)?\b", r"\brapid(ly)?\b", r"\bhurried\b"]},
    "loudness_level": {"quiet": [r"\bquiet\b", r"\bsoft\b", r"\bfaint\b"],
                       "normal": [r"\bnormal\b", r"\bmoderate\b", r"\bmedium\b", r"\baverage\b"],
                       "loud": [r"\bloud\b"]},
    "number_of_speakers": {"one": [r"\bone\b", r"\bsingle\b", r"\b1\b", r"\balone\b"],
                           "two": [r"\btwo\b", r"\b2\b"],
                           "three or more": [r"\bthree\b", r"\bseveral\b", r"\bmany\b", r"\bmore than two\b"]},
    "language_identity": {code: [rf"\b{name.lower()}\b"] for code, name in LANGUAGE_NAMES.items()},
    "background_noise_level": {"clean": [r"\bclean\b", r"\bquiet background\b", r"\bclear\b", r"\bsilent background\b"],
                               "noisy": [r"\bnois[ey]\b", r"\bnoisy\b", r"\bhiss"]},
    "clipping_presence": {"clipped": [r"^yes\b", r"\bis distorted\b", r"\bclips\b"],
                          "not_clipped": [r"^no\b", r"\bfree of\b", r"\bundistorted\b", r"\bno distortion\b"]},
    "speech_music_or_noise": {"speech": [r"\bspeak", r"\bspeech\b", r"\btalk", r"\bspoken\b", r"\bvoice\b"],
                              "tonal": [r"\btone\b", r"\bmusic", r"\bmelod", r"\bnote\b"],
                              "noise_like": [r"\bnoise\b", r"\bhiss\b", r"\bstatic\b"]},
}
# Leaves whose answers are yes/no: their leading "yes"/"no" is the answer, not a negation to cut.
_KEEP_NEGATION = {"clipping_presence"}
_NEGATED = re.compile(r"\b(without|not|nobody|no one|never|no)\b[^,.;:]*", re.I)


def says(leaf: str, label: str, option: str) -> bool:
    text = option.strip().lower()
    if leaf not in _KEEP_NEGATION:
        text = _NEGATED.sub(" ", text)
    return any(re.search(p, text) for p in PATTERNS.get(leaf, {}).get(label, []))


def option_for(leaf: str, label: str | None, options: list[str]) -> int | None:
    """The index of the one option that says `label`; None when none or several do."""
    if label is None or leaf not in PATTERNS:
        return None
    hits = [i for i, option in enumerate(options) if says(leaf, label, option)]
    return hits[0] if len(hits) == 1 else None


def gender_from_f0(f0: float | None, t: TagThresholds) -> str | None:
    """Male below the geometric mean of the male range's top and the female range's bottom (~156 Hz)."""
    if f0 is None or not math.isfinite(f0):
        return None
    return "male" if f0 < math.sqrt(t.pitch_male_hz[1] * t.pitch_female_hz[0]) else "female"


def label_from_tags(leaf: str, a: dict, t: TagThresholds = TagThresholds()) -> str | None:
    """The label an annotation-like dict supports for `leaf` (None: it does not decide it)."""
    speech = a.get("tag_content") == "speech"
    if leaf == "speaker_gender":
        return a.get("gender") if speech else None
    if leaf == "pitch_relative_to_gender":
        return a.get("tag_pitch") if speech else None
    if leaf == "speaking_rate_level":
        return a.get("tag_rate") if speech else None
    if leaf == "loudness_level":
        return a.get("tag_loudness")
    if leaf == "number_of_speakers":
        n = a.get("num_speakers")
        return None if not speech or n is None else "one" if n == 1 else "two" if n == 2 else "three or more"
    if leaf == "language_identity":
        return a.get("language") if speech else None
    if leaf == "background_noise_level":
        return a.get("tag_quality")
    if leaf == "clipping_presence":
        return a.get("tag_clipping")
    if leaf == "speech_music_or_noise":
        if speech:
            return "speech"
        return a.get("tag_timbre") if a.get("tag_timbre") in ("tonal", "noise_like") else None
    return None


def tags_from_measures(m: dict, t: TagThresholds = TagThresholds()) -> dict:
    """An answerer's own measurements binned like the annotate stage's tags."""
    speech = bool(m.get("speech"))
    gender = gender_from_f0(m.get("f0_median_hz"), t) if speech else None
    bounds = t.pitch_male_hz if gender == "male" else t.pitch_female_hz
    flat = m.get("flatness")
    snr = m.get("snr_db")
    if speech:
        quality = None if snr is None else "noisy" if snr < t.noisy_snr_below_db else "clean"
    else:  # without speech, noise is the whole signal: noise-like spectra are "noisy"
        quality = "noisy" if flat is not None and flat > t.noise_flatness_above else None
    return {
        "tag_content": "speech" if speech else "non_speech",
        "gender": gender,
        "tag_pitch": level(m.get("f0_median_hz"), bounds) if gender else None,
        "tag_rate": level(m.get("rate_sps"), t.rate_sps, ("slow", "normal", "fast")) if speech else None,
        "tag_loudness": level(m.get("loudness_lufs"), t.loudness_lufs, ("quiet", "normal", "loud")),
        "num_speakers": m.get("num_speakers"),
        "language": "en" if m.get("english") else None,
        "tag_quality": quality,
        "tag_clipping": None if m.get("clipping_ratio") is None
        else "clipped" if m["clipping_ratio"] > t.clipped_ratio_above else "not_clipped",
        "tag_timbre": level(flat, (t.tonal_flatness_below, t.noise_flatness_above), ("tonal", "mixed", "noise_like")),
    }
