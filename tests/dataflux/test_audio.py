import io

import numpy as np
import pytest
import soundfile as sf

from dataflux.audio import (TARGET_SR, AudioError, Limits, decode, decode_flac, encode_flac, split_points,
                            to_mono_16k, to_pcm16)
from tests.conftest import BAD_INPUTS, BAD_REASONS, DEMO_AUDIO


@pytest.mark.parametrize("path", sorted(DEMO_AUDIO.iterdir()), ids=lambda p: p.name)
def test_every_demo_file_decodes_to_16k_mono(path):
    decoded = decode(path.read_bytes())
    mono = to_mono_16k(decoded)
    assert mono.ndim == 1 and mono.dtype == np.float32
    assert abs(len(mono) / TARGET_SR - decoded.samples.shape[0] / decoded.sample_rate) < 0.06
    assert np.max(np.abs(mono)) <= 1.0


@pytest.mark.parametrize("name", [n for n in BAD_REASONS if not n.startswith("duplicate")])
def test_each_bad_input_has_its_reason(name):
    with pytest.raises(AudioError) as e:
        decode((BAD_INPUTS / name).read_bytes())
    assert e.value.reason_code == BAD_REASONS[name]
    assert e.value.detail


def wav_bytes(x, sr, subtype="PCM_16"):
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def test_downmix_and_resample_keep_a_tone_at_its_frequency():
    sr = 44100
    t = np.arange(sr) / sr
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t), 0.5 * np.sin(2 * np.pi * 1000 * t)], axis=1)
    mono = to_mono_16k(decode(wav_bytes(stereo, sr)))
    assert len(mono) == TARGET_SR
    peak_hz = np.argmax(np.abs(np.fft.rfft(mono))) * TARGET_SR / len(mono)
    assert abs(peak_hz - 1000) <= 1
    assert abs(np.sqrt(np.mean(mono[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_quiet_but_not_silent_audio_is_kept_and_the_threshold_is_configurable():
    x = 10 ** (-50 / 20) * np.sin(np.linspace(0, 800, 16000))
    decode(wav_bytes(x, 16000, "FLOAT"))
    with pytest.raises(AudioError, match="all_silence"):
        decode(wav_bytes(x, 16000, "FLOAT"), Limits(silence_peak_dbfs=-40))


def test_long_audio_is_split_at_the_quiet_gap():
    sr = TARGET_SR
    rng = np.random.default_rng(0)
    loud = lambda s: 0.3 * rng.standard_normal(int(s * sr))  # noqa: E731
    gap_at = 27.0
    x = np.concatenate([loud(gap_at), np.zeros(int(0.5 * sr)), loud(20.0)]).astype(np.float32)
    ranges = split_points(x, Limits(max_clip_s=30.0, split_search_s=5.0))
    assert len(ranges) == 2
    cut = ranges[0][1] / sr
    assert gap_at <= cut <= gap_at + 0.5
    assert ranges[0][0] == 0 and ranges[-1][1] == len(x) and ranges[0][1] == ranges[1][0]
    assert all(end - start <= 30 * sr for start, end in ranges)


def test_very_long_audio_gives_several_bounded_segments():
    x = np.random.default_rng(1).standard_normal(95 * TARGET_SR).astype(np.float32) * 0.1
    ranges = split_points(x, Limits(max_clip_s=30.0))
    assert len(ranges) == 4
    assert sum(e - s for s, e in ranges) == len(x)
    assert all(e - s <= 30 * TARGET_SR for s, e in ranges)


def test_flac_round_trip_is_lossless():
    pcm = to_pcm16(np.random.default_rng(2).uniform(-1, 1, 8000).astype(np.float32))
    back, sr = decode_flac(encode_flac(pcm))
    assert sr == TARGET_SR
    assert np.array_equal(to_pcm16(back), pcm)
