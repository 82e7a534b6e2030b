"""The `template` question writer: deterministic questions built from measured tags, with plausible
distractors. Its answer key is known and kept in a separate column that answerers never see."""

from __future__ import annotations

from typing import Callable

from dataflux.languages import LANGUAGE_NAMES


# leaf name -> (question phrasings, answer(annotation) -> (correct, [distractors]) or None)
Spec = tuple[list[str], Callable[[dict], tuple[str, list[str]] | None]]


def _choice(value, mapping: dict[str, str], *extra: str) -> tuple[str, list[str]] | None:
    """The text for `value`, and the other values' texts plus `extra` ones as distractors (3 or more)."""
    if value not in mapping:
        return None
    return mapping[value], [text for key, text in mapping.items() if key != value] + list(extra)


def _gender(a):
    return _choice(a.get("gender"), {"male": "A man's voice", "female": "A woman's voice",
                                     "child": "A young child's voice"}, "No voice can be heard")


def _pitch(a):
    return _choice(a.get("tag_pitch"), {"low": "Low for this kind of voice", "medium": "About average",
                                        "high": "High for this kind of voice"}, "It cannot be told: nobody speaks")


def _rate(a):
    return _choice(a.get("tag_rate"), {"slow": "Slowly", "normal": "At an ordinary pace", "fast": "Quickly"},
                   "There is no speech to judge")


def _loudness(a):
    return _choice(a.get("tag_loudness"), {"quiet": "Quiet", "normal": "At a normal level", "loud": "Loud"},
                   "Completely silent")


def _speakers(a):
    if a.get("tag_content") != "speech" or a.get("num_speakers") is None:
        return None
    value = "one" if a["num_speakers"] == 1 else "two" if a["num_speakers"] == 2 else "three or more"
    return _choice(value, {"one": "One person", "two": "Two people", "three or more": "Three or more people"},
                   "Nobody speaks")


def _language(a):
    code = a.get("language")
    if code not in LANGUAGE_NAMES or (a.get("language_prob") or 0) < 0.7:
        return None
    others = [name for c, name in LANGUAGE_NAMES.items() if c != code and c in ("en", "fr", "de", "es")]
    others += [name for c, name in LANGUAGE_NAMES.items() if c != code and name not in others]
    return LANGUAGE_NAMES[code], others[:3]


def _noise(a):
    if a.get("tag_content") != "speech":
        return None  # "background" needs a foreground: without speech the question is ill-posed
    return _choice(a.get("tag_quality"), {"clean": "Clean, with a quiet background",
                                          "noisy": "Noticeable background noise"},
                   "Heavy echo, as in a large hall", "Music playing behind everything") if a.get("tag_quality") else None


def _clipping(a):
    return _choice(a.get("tag_clipping"), {"clipped": "Yes, it is distorted by clipping",
                                           "not_clipped": "No, it is free of clipping distortion"},
                   "It is muffled, as if behind a thick wall", "It crackles like an old vinyl record") \
        if a.get("tag_clipping") else None


def _sound_type(a):
    if a.get("tag_content") == "speech":
        value = "speech"
    elif a.get("tag_timbre") in ("tonal", "noise_like"):
        value = a["tag_timbre"]
    else:
        return None  # mixed non-speech: the measurements do not decide it
    return _choice(value, {"speech": "Someone speaking", "tonal": "A tone or music, without speech",
                           "noise_like": "Noise, without speech"}, "Complete silence")


SPECS: dict[str, Spec] = {
    "speaker_gender": (["What kind of voice do you hear?", "Who is speaking in this clip?"], _gender),
    "pitch_relative_to_gender": (["How high is the speaker's voice compared with similar voices?",
                                  "How would you describe the pitch of this voice?"], _pitch),
    "speaking_rate_level": (["How fast does the person speak?", "At what pace is this spoken?"], _rate),
    "loudness_level": (["How loud is the speech in this recording?", "What is the level of this recording?"],
                       _loudness),
    "number_of_speakers": (["How many different people speak?", "How many speakers can you hear?"], _speakers),
    "language_identity": (["Which language is spoken?", "What language do you hear?"], _language),
    "background_noise_level": (["How would you describe the background of this recording?",
                                "What is the background like?"], _noise),
    "clipping_presence": (["Is the sound distorted by clipping?", "Does the signal clip?"], _clipping),
    "speech_music_or_noise": (["What do you hear in this clip?", "Which best describes this audio?"], _sound_type),
}
TEMPLATE_VERSION = "template-v2"
