"""Environment and recording quality: background noise, room, distortion."""

from dataflux.taxonomy.spec import Above, Binned, Label, Levels, leaf


def background(m: dict, t) -> str | None:
    """Noisy when DNSMOS BAK is under its threshold (P.835: 3 = "noticeable but not intrusive") or the
    voice stands less than the SNR threshold above the background."""
    bak, snr = m.get("dnsmos_bak"), m.get("snr_db")
    if bak is None and snr is None:
        return None
    noisy = (bak is not None and bak < t.noisy_bak_below) or (snr is not None and snr < t.noisy_snr_below_db)
    return "noisy" if noisy else "clean"


def with_speech(a: dict) -> bool:
    """"Background" needs a foreground: without speech the question is ill-posed."""
    return a.get("tag_content") == "speech"


LEAVES = [
    leaf("environment_quality > noise > background_noise > background_noise_level",
         "how clean or noisy the background is",
         grounded_by=["tag_quality"], tag="tag_quality", bins=Binned(background, ("clean", "noisy")), ask=with_speech,
         labels={"clean": Label("Clean, with a quiet background", (r"\bclean\b", r"\bquiet background\b", r"\bclear\b",
                                                                   r"\bsilent background\b")),
                 "noisy": Label("Noticeable background noise", (r"\bnois[ey]\b", r"\bnoisy\b", r"\bhiss"))},
         distractors=("Heavy echo, as in a large hall", "Music playing behind everything"),
         questions=("How would you describe the background of this recording?", "What is the background like?"),
         rules=("Background noise is judged by how far the voice stands above the background (below 15 dB SNR is "
                "noisy) and by the background quality score.",),
         evidence=("The voice stands about {snr_db:.0f} dB above the background, so the background is {label}",
                   "There is no voice, and the whole clip is broadband noise"),
         caption={"clean": ("The recording is clean, with no noticeable background noise.",
                            "The background is quiet and the recording is clear."),
                  "noisy": ("Background noise is audible.", "The recording is noisy.")}),
    # RT60 of living rooms and offices is about 0.3-0.6 s, of concert halls 1.5-2.5 s; the blind estimate
    # (annotate.acoustics.measure_rt60) reads long halls short, hence the bins at 0.45 and 0.9 s.
    leaf("environment_quality > reverberation > room > reverberation_level", "dry, small room, large hall",
         grounded_by=["tag_reverb"], tag="tag_reverb", speech_only=True,
         bins=Levels("rt60_s", "rt60_s", ("dry", "room", "hall")),
         labels={"dry": Label("Dry and close, with almost no echo", (r"\bdry\b", r"\balmost no echo\b")),
                 "room": Label("Some reverberation, as in an ordinary room", (r"\bordinary room\b",
                                                                            r"\bsome reverb")),
                 "hall": Label("Long, hall-like reverberation", (r"\bhall",))},
         distractors=("Muffled, as if through a wall",),
         questions=("How reverberant is the space the voice is in?", "How much does each word ring on after it ends?"),
         rules=("Reverberation is how long sound lingers after it stops: under about 0.45 s is dry, over 0.9 s is "
                "a hall.",),
         evidence=("Sound dies away over about {rt60_s:.1f} seconds, which is {label}",),
         caption={"dry": ("The voice is dry and close.",), "room": ("The voice carries some room reverberation.",),
                  "hall": ("The voice echoes as in a large hall.",)}),
    # More than 0.1 % of samples at full scale (the threshold's default) is clipped.
    leaf("environment_quality > distortion > clipping > clipping_presence",
         "whether the signal is distorted by clipping",
         grounded_by=["tag_clipping"], tag="tag_clipping",
         bins=Above("clipping_ratio", "clipped_ratio_above", ("not_clipped", "clipped")), yes_no=True,
         labels={"clipped": Label("Yes, it is distorted by clipping", (r"^yes\b", r"\bis distorted\b", r"\bclips\b"),
                                  "Stretches of the waveform sit flat at full scale, which is clipping"),
                 "not_clipped": Label("No, it is free of clipping distortion",
                                      (r"^no\b", r"\bfree of\b", r"\bundistorted\b", r"\bno distortion\b"),
                                      "The waveform never sits flat at full scale, so nothing clips")},
         distractors=("It is muffled, as if behind a thick wall", "It crackles like an old vinyl record"),
         questions=("Are the peaks of the waveform flattened?", "Does the signal clip?"),
         rules=("Clipping means flattened peaks and harsh distortion, not simply loud audio.",),
         caption={"clipped": ("The signal clips at full scale.",)}),
    # Telephone speech is band-limited to 300-3400 Hz (ITU-T G.712); wideband speech reaches 7 kHz and more.
    leaf("environment_quality > recording > bandwidth > audio_bandwidth",
         "whether the audio is telephone band-limited or full band",
         grounded_by=["tag_bandwidth"], tag="tag_bandwidth", speech_only=True,
         bins=Above("bandwidth_hz", "narrowband_below_hz", ("narrowband", "wideband")),
         labels={"narrowband": Label("Narrow and thin, like a telephone line", (r"\btelephone\b", r"\bthin\b")),
                 "wideband": Label("Full and crisp, with clear high frequencies", (r"\bfull\b", r"\bcrisp\b"))},
         distractors=("Muffled, as if through a wall", "Distorted by clipping"),
         questions=("How does the frequency range of this recording sound?", "What is the sound quality like?"),
         rules=("Telephone audio stops near 3.4 kHz: sibilants sound dull and the voice thin.",),
         evidence=("The spectrum reaches about {bandwidth_hz:.0f} Hz, so it is {label}",),
         caption={"narrowband": ("It sounds band-limited, like a telephone call.",),
                  "wideband": ("It is recorded in full bandwidth.",)}),
    leaf("environment_quality > recording > dynamics > dynamic_range_level",
         "whether the level stays even or rises and falls",
         grounded_by=["tag_dynamics"], tag="tag_dynamics", ask=lambda a: a.get("tag_sound") != "silence",
         bins=Above("dynamic_range_db", "dynamic_range_db", ("steady", "varying")),
         labels={"steady": Label("It stays even throughout", (r"\beven throughout\b",)),
                 "varying": Label("It rises and falls, with quiet gaps", (r"\brises and falls\b",))},
         distractors=("It fades out to silence halfway", "It gets steadily louder"),
         questions=("How does the loudness change over the clip?", "Does the loudness stay the same?"),
         rules=("Dynamics is the spread of the level: more than 15 dB between loud and quiet parts is varying.",),
         evidence=("The level spreads over about {dynamic_range_db:.0f} dB, so it {label}",)),
    # The option texts say the default bins of `tag_duration` (annotate.tags.duration_s: 3 and 10 s).
    leaf("environment_quality > recording > length > recording_length", "how long the recording lasts",
         grounded_by=["tag_duration"], tag="tag_duration",
         labels={"short": Label("Only a moment, under three seconds", (r"\bmoment\b", r"\bunder three\b",
                                                                       r"\bbrief\b", r"\bshort\b")),
                 "medium": Label("A few seconds, between three and ten", (r"\bfew seconds\b",
                                                                          r"\bbetween three and ten\b")),
                 "long": Label("Longer than ten seconds", (r"\blonger\b", r"\bover ten\b", r"\bmore than ten\b",
                                                           r"\blong\b"))},
         distractors=("Several minutes",),
         questions=("How long is this recording?", "How long does the clip last?"),
         rules=("A clip's length counts the whole recording, silences included: under 3 seconds is short, over "
                "10 seconds is long.",),
         evidence=("The clip lasts {duration_s:.1f} seconds from start to end",)),
]
