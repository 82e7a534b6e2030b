"""Environment and recording quality: background noise, room, distortion."""

from dataflux.taxonomy.spec import Above, Binned, Label, leaf


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
    leaf("environment_quality > reverberation > room > reverberation_level", "dry, small room, large hall"),
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
         questions=("Is the sound distorted by clipping?", "Does the signal clip?"),
         rules=("Clipping means flattened peaks and harsh distortion, not simply loud audio.",),
         caption={"clipped": ("The signal clips at full scale.",)}),
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
