"""From measurements to a taxonomy leaf's label, and from a label to the one option that says it.

The bins and the option synonyms are the leaf specs' (`dataflux.taxonomy`), the same bins the annotate
stage tags with, so an answerer and the tags speak one vocabulary. What is the verifier's own is how it
measures (`measure.py`) and how it names its measurements in the annotations' columns (`annotation_view`).
An option "says" a label when one of the label's patterns matches it after negated clauses ("without
speech", "nobody speaks") are cut away; a label that no option, or more than one, says gives no answer.
`t` is the config's tag thresholds (`annotate.tags`), passed in by the verify stage.
"""

from __future__ import annotations

import math

from dataflux.taxonomy import bin_tags, leaf_named


def option_for(leaf: str, label: str | None, options: list[str]) -> int | None:
    """The index of the one option that says `label`; None when none or several do (or no spec)."""
    spec = leaf_named(leaf)
    return spec.option_for(label, options) if spec else None


def label_from_tags(leaf: str, a: dict) -> str | None:
    """The label an annotation-like dict supports for `leaf` (None: it does not decide it)."""
    spec = leaf_named(leaf)
    return spec.label_of(a) if spec else None


def gender_from_f0(f0: float | None, t) -> str | None:
    """Male below the geometric mean of the male range's top and the female range's bottom (~156 Hz)."""
    if f0 is None or not math.isfinite(f0):
        return None
    return "male" if f0 < math.sqrt(t.pitch_male_hz[1] * t.pitch_female_hz[0]) else "female"


def annotation_view(m: dict, t) -> dict:
    """An answerer's own measurements under the annotations' column names. Speech-only values count
    only when the stack heard speech; gender comes from pitch (the annotator uses a classifier)."""
    speech = bool(m.get("speech"))
    return {"is_speech": speech, "gender": gender_from_f0(m.get("f0_median_hz"), t) if speech else None,
            "f0_median_hz": m.get("f0_median_hz"), "speech_rate_sps": m.get("rate_sps") if speech else None,
            "loudness_lufs": m.get("loudness_lufs"), "snr_db": m.get("snr_db") if speech else None,
            "clipping_ratio": m.get("clipping_ratio"), "spectral_flatness": m.get("flatness"),
            "num_speakers": m.get("num_speakers"), "duration_s": m.get("duration_s"),
            "language": "en" if m.get("english") else None,
            **{k: m.get(k) for k in ("onset_count", "tempo_bpm", "harmonic_ratio", "tone_hz", "rt60_s", "bandwidth_hz",
                                     "dynamic_range_db", "sound_class")}}


def tags_from_measures(m: dict, t) -> dict:
    """An answerer's own measurements binned like the annotate stage's tags."""
    a = annotation_view(m, t)
    tags = {**a, **bin_tags(a, t)}
    if not a["is_speech"]:  # without speech, noise is the whole signal: noise-like spectra are "noisy"
        tags["tag_quality"] = "noisy" if tags["tag_timbre"] == "noise_like" else None
    return tags
