"""Music: beat, texture and pitch that signal processing measures, and what only a model can name
(instruments, genre, mood)."""

from dataflux.taxonomy.spec import Binned, Label, Levels, leaf


def not_speech(a: dict) -> bool:
    """Music leaves are asked about clips without speech: a tempo or a tone under a voice is not measured."""
    return a.get("tag_content") == "non_speech"


def musical(a: dict) -> bool:
    return not_speech(a) and a.get("tag_sound") in ("music", "tone")


def texture(m: dict, t) -> str | None:
    """Tonal vs percussive from the harmonic share of a harmonic/percussive separation; noise is neither."""
    if m.get("sound_class") not in ("music", "tone"):
        return None
    return Levels("harmonic_ratio", "harmonic_ratio", ("percussive", "mixed", "tonal"))(m, t)


LEAVES = [
    # Tempo markings: Andante ~76-108, Moderato ~108-120, Allegro ~120-156 BPM; the bins split at 100 and 140.
    leaf("music > rhythm > tempo > tempo_level", "how fast the beat is",
         grounded_by=["tag_tempo"], tag="tag_tempo", ask=musical,  # a pulsing noise has a rate, not a tempo
         bins=Levels("tempo_bpm", "tempo_bpm", ("slow", "moderate", "fast")),
         labels={"slow": Label("Slow, under 100 beats per minute", (r"\bslow\b", r"\bunder 100\b")),
                 "moderate": Label("Moderate, 100 to 140 beats per minute", (r"\bmoderate\b", r"\b100 to 140\b")),
                 "fast": Label("Fast, over 140 beats per minute", (r"\bfast\b", r"\bover 140\b"))},
         distractors=("There is no steady beat",),
         questions=("How would you describe the tempo?", "What is the tempo of this clip?"),
         rules=("Tempo is the rate of the steady beat in beats per minute: under 100 is slow, over 140 is fast.",),
         evidence=("The beats come about {tempo_bpm:.0f} times a minute, a {label} tempo",),
         caption={"slow": ("A slow, steady beat runs through it.",),
                  "moderate": ("It keeps a steady beat at a moderate tempo.",),
                  "fast": ("A fast, steady beat drives it.",)}),
    leaf("music > texture > tonal_percussive > tonal_or_percussive", "whether the sound is pitched or percussive",
         grounded_by=["tag_texture"], tag="tag_texture", bins=Binned(texture, ("percussive", "mixed", "tonal")),
         ask=musical,
         labels={"tonal": Label("Sustained pitched notes", (r"^sustained\b",)),
                 "percussive": Label("Short percussive hits, like clicks or drums", (r"^short percussive\b",
                                                                                    r"\bclicks or drums\b")),
                 "mixed": Label("Pitched notes together with sharp percussive attacks",
                                (r"\btogether with\b",))},
         distractors=("A steady hiss with no pitch and no hits",),
         questions=("What makes up this sound?", "What kind of sound makes up this clip?"),
         rules=("Tonal sound holds pitched notes; percussive sound is short hits without a held pitch.",),
         evidence=("About {harmonic_ratio:.0%} of the energy is in held, pitched components, so it is {label}",),
         caption={"tonal": ("The sound is made of sustained, pitched notes.",),
                  "percussive": ("The sound is made of short percussive hits.",),
                  "mixed": ("Pitched notes and percussive hits mix.",)}),
    # Middle C is 262 Hz; 250 and 700 Hz split the lower, middle and upper parts of a melody's range.
    leaf("music > pitch > sustained_tone > tone_pitch_level", "how high a steady tone is",
         grounded_by=["tag_tone"], tag="tag_tone", ask=not_speech,
         bins=Levels("tone_hz", "tone_hz", ("low", "middle", "high")),
         labels={"low": Label("Low, below about 250 Hz", (r"\blow\b", r"\bbelow about 250\b")),
                 "middle": Label("In the middle, between 250 and 700 Hz", (r"\bmiddle\b",)),
                 "high": Label("High, above about 700 Hz", (r"\bhigh\b", r"\babove about 700\b"))},
         distractors=("It has no steady pitch",),
         questions=("What register is this tone in?", "How would you place this tone's frequency?"),
         rules=("A tone's pitch is its fundamental frequency: below 250 Hz is low, above 700 Hz is high.",),
         evidence=("The tone holds at about {tone_hz:.0f} Hz, which is {label}",),
         caption={"low": ("The tone is low-pitched.",), "middle": ("The tone sits in a middle register.",),
                  "high": ("The tone is high-pitched.",)}),
    leaf("music > instruments > identity > instrument_family", "which instruments play (strings, piano, drums, ...)"),
    leaf("music > genre > style > music_genre", "the style of the music (classical, rock, jazz, electronic, ...)"),
    leaf("music > mood > affect > music_mood", "the mood the music conveys (calm, tense, joyful, sad, ...)"),
]
