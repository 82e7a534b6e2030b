"""Non-speech events: what else is heard (sound type, music, silence)."""

from dataflux.taxonomy.spec import Binned, Label, Levels, leaf


def sound_type(a: dict) -> str | None:
    if a.get("tag_content") == "speech":
        return "speech"
    timbre = a.get("tag_timbre")
    return timbre if timbre in ("tonal", "noise_like") else None  # mixed non-speech: the measurements do not decide


def sound_kind(m: dict, t) -> str | None:
    return m.get("sound_class")  # already a class (annotate.acoustics.sound_class)


def events(m: dict, t) -> str | None:
    n = m.get("onset_count")
    return None if not n else ("one", "two", "three")[n - 1] if n <= 3 else "four_or_more"


def countable(a: dict) -> bool:
    """Separate events are counted in clips without speech (every syllable would be an onset) that hold
    music, a tone or unclassified sound, not steady noise or silence."""
    return a.get("tag_content") == "non_speech" and a.get("tag_sound") not in ("noise", "silence")


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
    leaf("non_speech_events > sound_type > category > sound_category", "speech, music, a steady tone or noise",
         grounded_by=["tag_sound"], tag="tag_sound",
         bins=Binned(sound_kind, ("speech", "music", "tone", "noise", "silence")),
         labels={"speech": Label("Speech", (r"\bspeech\b",), "I hear a voice forming words"),
                 "music": Label("Music", (r"\bmusic\b",), "I hear pitched notes or a steady beat that start and stop"),
                 "tone": Label("A steady electronic tone", (r"\btone\b",),
                               "I hear one pitched sound without attacks or words"),
                 "noise": Label("Noise", (r"^noise$",), "I hear a flat, hiss-like spectrum with no pitch and no beat"),
                 "silence": Label("Near silence", (r"\bsilence\b",),
                                  "I hear almost nothing: the level stays very low")},
         questions=("Which of these is this clip?", "What kind of sound is this?"),
         rules=("Speech has words; music has notes or a beat that start and stop; a steady tone holds or glides "
                "without attacks; noise has no pitch.",),
         caption={"music": ("It sounds like music.",), "tone": ("It is a steady electronic tone.",),
                  "noise": ("It is plain noise.",)}),
    leaf("non_speech_events > events > count > number_of_sound_events", "how many separate sounds start in the clip",
         grounded_by=["tag_events"], tag="tag_events", ask=countable,
         bins=Binned(events, ("one", "two", "three", "four_or_more")),
         labels={"one": Label("One", (r"^one$",)), "two": Label("Two", (r"^two$",)),
                 "three": Label("Three", (r"^three$",)), "four_or_more": Label("Four or more", (r"\bfour or more\b",))},
         questions=("How many separate sounds start in this clip?", "How many distinct sound events do you hear?"),
         rules=("A sound event starts with an audible attack; a held sound is one event however long it lasts.",),
         evidence=("I count {onset_count} separate attacks",)),
    leaf("non_speech_events > sources > identity > sound_source",
         "what makes the sounds (a dog, a door, a car, rain, an alarm, ...)"),
    leaf("non_speech_events > music > genre_and_instruments > music_character", "instruments, tempo and mood of music"),
    leaf("non_speech_events > silence > presence > silence_presence", "long silences or gaps in the audio",
         rules=("Silence questions need long stretches with no sound at all.",)),
]
