"""Delivery: how it is said (speaking rate, loudness, fluency)."""

from dataflux.taxonomy.spec import Label, Levels, leaf

LEAVES = [
    # Syllables per second (steadier across sentences than words per second): conversational English runs
    # at about 4-6, ~5 on average (Laver 1994; Pellegrino et al. 2011).
    leaf("delivery > speaking_rate > tempo > speaking_rate_level", "how fast the person speaks",
         grounded_by=["tag_rate"], tag="tag_rate", speech_only=True,
         bins=Levels("speech_rate_sps", "rate_sps", ("slow", "normal", "fast")),
         labels={"slow": Label("Slowly", (r"\bslow(ly)?\b", r"\bunhurried\b", r"\bleisurely\b")),
                 "normal": Label("At an ordinary pace", (r"\bordinary\b", r"\bnormal\b", r"\bmoderate\b",
                                                         r"\baverage\b", r"\bnatural\b", r"\bsteady\b")),
                 "fast": Label("Quickly", (r"\bfast\b", r"\bquick(ly)?\b", r"\brapid(ly)?\b", r"\bhurried\b"))},
         distractors=("There is no speech to judge",),
         questions=("How fast does the person speak?", "What is the speaking rate like?"),
         rules=("Speaking rate is judged in syllables per second: below 3.5 is slow, above 6.5 is fast.",),
         evidence=("I count about {speech_rate_sps:.1f} syllables per second, which is a {label} pace",),
         caption={"slow": ("slowly", "at an unhurried pace"),
                  "normal": ("at a normal pace", "at a conversational pace"),
                  "fast": ("quickly", "at a brisk pace")}),
    # EBU R128 targets -23 LUFS for programme loudness; more than 6 LU below is quiet, above is loud.
    leaf("delivery > loudness > vocal_level > loudness_level", "how loud the recording of the speech is",
         grounded_by=["tag_loudness"], tag="tag_loudness",
         bins=Levels("loudness_lufs", "loudness_lufs", ("quiet", "normal", "loud")),
         labels={"quiet": Label("Quiet", (r"\bquiet\b", r"\bsoft\b", r"\bfaint\b")),
                 "normal": Label("At a normal level", (r"\bnormal\b", r"\bmoderate\b", r"\bmedium\b", r"\baverage\b")),
                 "loud": Label("Loud", (r"\bloud\b",))},
         distractors=("Completely silent",),
         questions=("What is the volume of the speech in this recording?",
                    "How would you rate the volume of this recording?"),
         rules=("Loudness is judged against -23 LUFS: more than 6 LU below is quiet, more than 6 LU above is loud.",),
         evidence=("The speech plays at about {loudness_lufs:.0f} LUFS, which sounds {label}",),
         caption={"quiet": ("The level is quiet.", "It is recorded softly."),
                  "normal": ("The level is moderate.", "It sits at a normal listening level."),
                  "loud": ("The level is loud.", "It is recorded loudly.")}),
    leaf("delivery > fluency > pauses > pauses_and_hesitation", "pauses, hesitations, fillers and repairs",
         rules=("Pauses and hesitations must be audible; a description that says \"fluent\" contradicts "
                "\"many pauses\".",)),
]
