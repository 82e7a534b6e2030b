import numpy as np

from dataflux.annotate.speaker import Speakers
from dataflux.audio import decode, to_mono_16k
from tests.conftest import DEMO_AUDIO


def load(name):
    return to_mono_16k(decode((DEMO_AUDIO / name).read_bytes()))


def annotate(audio):
    analyzer = Speakers()
    analyzer.setup()
    row, = analyzer.process_batch([{"clip_id": "c", "pcm": audio.astype(np.float32).tobytes(),
                                    "is_speech": True}]).rows
    return row


def test_one_voice_is_one_speaker_and_two_voices_take_two_turns():
    """One voice at two speaking rates is one speaker in one turn. (The same espeak voice moved 30 % up in
    pitch counts as a second speaker: to the encoder it is a different voice.)"""
    male = load("001_en_male_low_slow.flac")
    female = load("016_en_female_high_slow.flac")
    gap = np.zeros(8000, np.float32)
    for one in (np.concatenate([male, gap, load("002_en_male_low_normal.wav")]),
                np.concatenate([female, gap, load("017_en_female_high_normal.wav")])):
        row = annotate(one)
        assert (row["num_speakers"], row["num_turns"]) == (1, 1)
    row = annotate(np.concatenate([male, gap, female]))
    assert (row["num_speakers"], row["num_turns"]) == (2, 2)
    first, second = row["speaker_turns"]
    assert first["speaker"] == 0 and second["speaker"] == 1
    assert abs(first["end_s"] - len(male) / 16000) < 0.5 and abs(second["start_s"] - (len(male) + 8000) / 16000) < 0.5
