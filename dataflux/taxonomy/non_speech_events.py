"""Non-speech events: what else is heard (sound type, music, silence)."""

from dataflux.taxonomy.spec import Label, Levels, leaf


def sound_type(a: dict) -> str | None:
    if a.get("tag_content") == "speech":
        return "speech"
    timbre = a.get("tag_timbre")
    return timbre if timbre in ("tonal", "noise_like") else None  # mixed non-speech: the measurements do not decide


LEAVES = [
    leaf("non_speech_events > sound_type > presence > speech_music_or_noise",
         "whether the clip holds speech, a tone or music, or noise",
         grounded_by=["tag_content", "tag_timbre"], tag="tag_timbre",
         bins=Levels("spectral_flatness", ("tonal_flatness_below", "noise_flatness_above"),
                     ("tonal", "mixed", "noise_like")),
         derive=sound_type,
         labels={"speech": Label("Someone speaking",
                                 (r"\bspeak", r"\bspeech\b", r"\btalk", r"\bspoken\b", r"\bvoice\b"),
                                 "I hear a voice forming words"),
                 "tonal": Label("A tone or music, without speech", (r"\btone\b", r"\bmusic", r"\bmelod", r"\bnote\b"),
                                "I hear steady pitched tones and no voice"),
                 "noise_like": Label("Noise, without speech", (r"\bnoise\b", r"\bhiss\b", r"\bstatic\b"),
                                     "I hear a hiss-like noise with no pitch and no voice")},
         distractors=("Complete silence",),
         questions=("What do you hear in this clip?", "Which best describes this audio?"),
         rules=("A clip with no voice cannot be \"speech\"; steady pitched sound is a tone or music; broadband hiss is "
                "noise.",),
         caption={"tonal": ("The sound is tonal, like a steady tone or music.",
                            "It has a clear tonal, musical character."),
                  "mixed": ("The sound mixes tonal and noisy parts.", "It has both tonal and noisy components."),
                  "noise_like": ("The sound is noise-like, without clear pitch.", "It resembles broadband noise.")}),
    leaf("non_speech_events > music > genre_and_instruments > music_character", "instruments, tempo and mood of music"),
    leaf("non_speech_events > silence > presence > silence_presence", "long silences or gaps in the audio",
         rules=("Silence questions need long stretches with no sound at all.",)),
]
