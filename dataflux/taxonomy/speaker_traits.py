"""Speaker traits: who speaks (gender, age, pitch, voice quality, how many)."""

from dataflux.taxonomy.spec import Binned, Label, leaf, level


def pitch_for_gender(m: dict, t) -> str | None:
    """Pitch relative to the speaker's gender: typical adult speaking F0 is about 85-155 Hz for men and
    165-255 Hz for women; "low" / "high" are the lower and upper parts of those ranges."""
    bounds = {"male": t.pitch_male_hz, "female": t.pitch_female_hz}.get(m.get("gender"))
    return level(m.get("f0_median_hz"), tuple(bounds)) if bounds else None


def speakers_tag(m: dict, t) -> str | None:
    n = m.get("num_speakers")
    return None if n is None else "single" if n == 1 else "multiple"


def speaker_count(a: dict) -> str | None:
    n = a.get("num_speakers")
    return None if n is None else "one" if n == 1 else "two" if n == 2 else "three or more"


LEAVES = [
    leaf("speaker_traits > gender > perceived_gender > speaker_gender", "whether the voice sounds male or female",
         grounded_by=["gender"], tag="gender", speech_only=True,
         labels={"male": Label("A man's voice", (r"\bman\b", r"\bman's\b", r"\bmale\b", r"\bmasculine\b", r"\bmen\b")),
                 "female": Label("A woman's voice", (r"\bwoman\b", r"\bwoman's\b", r"\bfemale\b", r"\bfeminine\b",
                                                    r"\bwomen\b")),
                 "child": Label("A young child's voice")},
         distractors=("No voice can be heard",),
         questions=("What kind of voice do you hear?", "Who is speaking in this clip?"),
         rules=("Perceived gender and pitch are judged relative to adult voices; a measured median pitch is "
                "stronger evidence than a description.",),
         evidence=("The voice's typical pitch is about {f0_median_hz:.0f} Hz, which is in the range of a {label} "
                   "voice",),
         caption={"male": ("a male voice",), "female": ("a female voice",)}),
    leaf("speaker_traits > age_group > perceived_age > age_group", "child, young adult, middle-aged or elderly voice"),
    leaf("speaker_traits > pitch > pitch_level > pitch_relative_to_gender",
         "how high or low the voice is for a speaker of that gender",
         grounded_by=["tag_pitch"], tag="tag_pitch", bins=Binned(pitch_for_gender, ("low", "medium", "high")),
         speech_only=True,
         labels={"low": Label("Low for this kind of voice", (r"\blow\b", r"\bdeep\b", r"\blower\b")),
                 "medium": Label("About average", (r"\baverage\b", r"\bmedium\b", r"\bmoderate\b", r"\btypical\b",
                                                   r"\bmid")),
                 "high": Label("High for this kind of voice", (r"\bhigh\b", r"\bhigher\b", r"\bhigh-pitched\b",
                                                               r"\bshrill\b"))},
         distractors=("It cannot be told: nobody speaks",),
         questions=("Compared with similar speakers, where does this pitch sit?",
                    "How would you describe the pitch of this voice?"),
         rules=("Pitch level is relative to the speaker's gender: a deep female voice can be \"low\" at 170 Hz.",),
         evidence=("The voice sits around {f0_median_hz:.0f} Hz, which is {label} for a voice of this kind",),
         caption={"male low": ("a deep male voice", "a low-pitched man's voice"),
                  "male medium": ("a male voice of medium pitch", "a man's voice at an ordinary pitch"),
                  "male high": ("a high-pitched male voice", "a man speaking with a raised pitch"),
                  "female low": ("a low-pitched female voice", "a woman's voice on the deep side"),
                  "female medium": ("a female voice of medium pitch", "a woman's voice at an ordinary pitch"),
                  "female high": ("a high-pitched female voice", "a bright, high woman's voice")}),
    leaf("speaker_traits > voice_quality > phonation > breathy_or_creaky", "breathy, creaky, hoarse or modal voice"),
    leaf("speaker_traits > speaker_count > count > number_of_speakers", "how many different people speak",
         grounded_by=["tag_speakers", "tag_content"], tag="tag_speakers",
         bins=Binned(speakers_tag, ("single", "multiple")), speech_only=True, derive=speaker_count,
         labels={"one": Label("One person", (r"\bone\b", r"\bsingle\b", r"\b1\b", r"\balone\b"),
                              "The voice keeps one pitch range throughout, so it is one person"),
                 "two": Label("Two people", (r"\btwo\b", r"\b2\b"),
                              "The pitch jumps between two separate ranges, as two different voices do"),
                 "three or more": Label("Three or more people", (r"\bthree\b", r"\bseveral\b", r"\bmany\b",
                                                                 r"\bmore than two\b"),
                                        "The pitch jumps between two separate ranges, as two different voices do")},
         distractors=("Nobody speaks",),
         questions=("How many different voices take part?", "How many speakers can you hear?"),
         rules=("Speaker counts need distinct voices; one speaker changing pitch is still one speaker.",)),
]
