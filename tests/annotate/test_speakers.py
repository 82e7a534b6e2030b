import numpy as np

from dataflux.annotate.speaker import SpeakerCount
from dataflux.audio import decode, to_mono_16k
from tests.conftest import DEMO_AUDIO


def load(name):
    return to_mono_16k(decode((DEMO_AUDIO / name).read_bytes()))


def count(audio):
    analyzer = SpeakerCount()
    analyzer.setup()
    row, = analyzer.process_batch([{"clip_id": "c", "pcm": audio.astype(np.float32).tobytes(),
                                    "is_speech": True}]).rows
    return row["num_speakers"]


def test_one_voice_is_one_speaker_and_two_voices_are_two():
    male = load("001_en_male_low_slow.flac")
    female = load("016_en_female_high_slow.flac")
    gap = np.zeros(8000, np.float32)
    assert count(np.concatenate([male, gap, load("002_en_male_low_normal.wav")])) == 1
    assert count(np.concatenate([female, gap, load("013_en_female_medium_slow.ogg")])) == 1
    assert count(np.concatenate([male, gap, female])) == 2
