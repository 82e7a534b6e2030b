"""What each answerer can answer, per leaf, and from what evidence; and how the annotator measured it.

A kept item should rest on checks that do not fail together. One confirmation is independent evidence
only when the confirming answerer measures the leaf by another method than the annotator, and is not
the only answerer competent on that leaf (then nothing could have contradicted it). Two voices that
sound alike fool the annotator's speaker embeddings and the signal listener's pitch clusters together;
the Whisper listener cannot count speakers at all. Such an item is `single_source` (the policy flags or
discards it: `filter.policy.single_source`).

Methods are named by what decides the label; two entries with the same name share a method.
"""

from __future__ import annotations

# How the annotate chain measures each measured leaf (dataflux/annotate/).
ANNOTATOR: dict[str, str] = {
    "speaker_gender": "voice2gender classifier",
    "pitch_relative_to_gender": "Praat autocorrelation F0",
    "number_of_speakers": "speaker embedding clusters",
    "speaking_rate_level": "Whisper base word timings",
    "loudness_level": "BS.1770 loudness",
    "language_identity": "Whisper language identification",
    "background_noise_level": "DNSMOS and Silero-VAD SNR",
    "clipping_presence": "samples at full scale",
    "recording_length": "sample count",
    "speech_music_or_noise": "spectral flatness",
    "sound_category": "Silero VAD, harmonic share and onsets",
    "tempo_level": "spectral-flux onset intervals",
    "tonal_or_percussive": "harmonic/percussive separation",
    "tone_pitch_level": "YIN",
    "number_of_sound_events": "spectral-flux onsets",
    "reverberation_level": "decay-rate distribution",
    "audio_bandwidth": "long-term spectrum threshold",
    "dynamic_range_level": "frame level percentiles",
}

# The analyzer answerers' stacks (verifiers/measure.py): leaf -> method; a leaf missing is one they abstain on.
ANALYZER_STACKS: dict[str, dict[str, str]] = {
    "whisper": {
        "speaker_gender": "pYIN F0", "pitch_relative_to_gender": "pYIN F0",
        "speaking_rate_level": "Whisper tiny.en word timings", "loudness_level": "BS.1770 loudness",
        "language_identity": "Whisper language identification", "clipping_presence": "samples at full scale",
        "recording_length": "sample count", "speech_music_or_noise": "spectral flatness",
        "sound_category": "Whisper speech detection",
    },
    "signal": {
        "speaker_gender": "YIN F0", "pitch_relative_to_gender": "YIN F0",
        "number_of_speakers": "pitch clusters", "speaking_rate_level": "syllable nuclei",
        "loudness_level": "frame power", "background_noise_level": "WebRTC-VAD SNR",
        "clipping_presence": "runs stuck at full scale", "recording_length": "sample count",
        "speech_music_or_noise": "spectral flatness", "sound_category": "WebRTC VAD and energy features",
        "tempo_level": "envelope autocorrelation", "tonal_or_percussive": "energy concentration",
        "tone_pitch_level": "FFT peak", "number_of_sound_events": "energy rises",
        "reverberation_level": "Schroeder final decay", "audio_bandwidth": "spectral roll-off",
        "dynamic_range_level": "frame level percentiles",
    },
}
LISTENING_MODEL = "audio model"  # an audio LM hears the clip: competent on every leaf, by its own method


def evidence(answer: dict, leaf: str) -> str | None:
    """The method an answer entry answers `leaf` by; None when its answerer is not competent on it."""
    if answer.get("backend") == "analyzer":
        stack = (answer.get("model") or "").removeprefix("analyzer:")
        return ANALYZER_STACKS.get(stack, {}).get(leaf)
    return f"{LISTENING_MODEL} {answer.get('model')}" if answer.get("backend") else None


def single_source(answers: list[dict], leaf: str, key: str | None) -> bool:
    """True when the key rests on one source: no answerer confirms it, or exactly one does and it is the
    only competent answerer on the leaf or measures it the annotator's way (`ANNOTATOR`)."""
    competent = [a for a in answers if evidence(a, leaf) is not None]
    confirming = [a for a in competent if key is not None and a.get("letter") == key]
    if len(confirming) >= 2:
        return False
    if not confirming:
        return True
    return len(competent) == 1 or evidence(confirming[0], leaf) == ANNOTATOR.get(leaf)
