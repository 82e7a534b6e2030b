"""Writes tests/data/voices/*.flac: a few sentences from each of eight espeak-ng voice variants (four male,
four female), the raw material for the hard diarization conversations (tests/annotate/conversations.py).
Different variants of one gender differ in formants and pitch, not in language, so they are different
voices that sound alike. Deterministic; run once with espeak-ng installed, the outputs are committed:

    .venv/bin/python -m tests.data.make_voices
"""

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from examples.make_demo_audio import espeak, set_level, trim

OUT = Path(__file__).parent / "voices"
VOICES = {  # file stem -> (espeak voice, pitch)
    "male_a": ("en-us", 45), "male_b": ("en-us+m7", 50), "male_c": ("en+klatt2", 50), "male_d": ("en-us+m3", 40),
    "female_a": ("en+f2", 50), "female_b": ("en+f4", 50), "female_c": ("en-us+f3", 45), "female_d": ("en+klatt4", 55),
}
TEXT = ("We should meet again tomorrow morning. Yes. I think the budget is fine, but the plan needs more time. "
        "Right. Could you send me the numbers before lunch? Okay. The children were watching from the window.")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for stem, (voice, pitch) in VOICES.items():
        audio, sr = espeak(TEXT, voice, pitch, 165)
        audio = set_level(trim(soxr.resample(audio, sr, 16000).astype(np.float32), 16000), -22.0)
        sf.write(OUT / f"{stem}.flac", audio, 16000, subtype="PCM_16")
        print(stem, voice, f"{len(audio) / 16000:.1f} s")


if __name__ == "__main__":
    main()
