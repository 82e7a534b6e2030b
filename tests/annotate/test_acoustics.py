"""The beyond-speech analyzers on signals whose truth is known, and the analyzer answerer's independent
measurements of the same quantities (verifiers.measure) on the same signals. The speech sources are demo
clips in lossless FLAC; the rooms, telephone band, metronomes and chords are built here."""

import numpy as np
import pytest
import soundfile as sf
import soxr
from scipy.signal import butter, fftconvolve, sosfiltfilt

from dataflux.annotate import acoustics as A
from dataflux.annotate.tags import TagThresholds
from dataflux.audio import spectral_flatness
from dataflux.taxonomy import bin_tags
from examples.make_demo_audio import notes, ping_train, room_response
from tests.conftest import DEMO_AUDIO
from verifiers import measure as M

SR = 16000
T = TagThresholds()


def speech(name: str) -> np.ndarray:
    audio, rate = sf.read(DEMO_AUDIO / name, dtype="float64")
    return soxr.resample(audio, rate, SR)


def listener(x: np.ndarray, is_speech: bool) -> dict:
    return M._beyond_speech(x.astype(np.float32), is_speech, spectral_flatness(x.astype(np.float64)))


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_tempo_of_a_metronome_within_2_bpm(bpm):
    x = ping_train(bpm)
    onsets = A.measure_onsets(x)
    assert len(onsets) == len(np.arange(0.1, 4.0 - 0.05, 60 / bpm))
    assert abs(A.tempo_from_onsets(onsets) - bpm) <= 2
    assert abs(listener(x, False)["tempo_bpm"] - bpm) <= 2


def test_no_tempo_without_a_steady_beat():
    irregular = notes([[440.0]] * 5, [0.1, 0.4, 1.3, 1.6, 2.9], 3.5, 0.1)
    assert A.tempo_from_onsets(A.measure_onsets(irregular)) is None
    assert A.tempo_from_onsets(A.measure_onsets(np.random.default_rng(0).standard_normal(4 * SR) * 0.1)) is None


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_number_of_separate_sound_events(count):
    x = notes([[660.0]] * count, [0.2 + 0.7 * i for i in range(count)], 0.7 * count + 0.6, 0.12)
    assert len(A.measure_onsets(x)) == count
    assert listener(x, False)["onset_count"] == count


def test_tonal_vs_percussive():
    chords = notes([[261.6, 329.6, 392.0], [349.2, 440.0, 523.3]], [0.1, 1.6], 3.2, 1.2)
    clicks = ping_train(120)
    assert A.measure_harmonic_ratio(chords) > T.harmonic_ratio[1]
    assert A.measure_harmonic_ratio(clicks) < T.harmonic_ratio[0]
    assert listener(chords, False)["harmonic_ratio"] > T.harmonic_ratio[1]
    assert listener(clicks, False)["harmonic_ratio"] < T.harmonic_ratio[0]


@pytest.mark.parametrize("hz", [110.0, 220.0, 440.0, 1000.0, 1500.0])
def test_pitch_of_a_sustained_tone_within_1_percent(hz):
    t = np.arange(2 * SR) / SR
    x = 0.3 * sum(np.sin(2 * np.pi * hz * k * t) / k for k in (1, 2, 3))
    assert A.measure_tone(x) == pytest.approx(hz, rel=0.01)
    assert listener(x, False)["tone_hz"] == pytest.approx(hz, rel=0.01)


def test_a_sweep_and_noise_have_no_sustained_pitch():
    t = np.arange(3 * SR) / SR
    sweep = np.sin(2 * np.pi * (200 * t + (3000 - 200) / (2 * t[-1]) * t ** 2))
    noise = np.random.default_rng(1).standard_normal(3 * SR) * 0.1
    for x in (sweep, noise):
        assert A.measure_tone(x) is None and listener(x, False)["tone_hz"] is None


@pytest.mark.parametrize("name", ["001_en_male_low_slow.flac", "011_en_female_low_normal.flac"])
def test_reverberation_orders_three_synthetic_rooms(name):
    dry = speech(name)
    rooms = [fftconvolve(dry, room_response(rt60, seed=5)) for rt60 in (0.3, 0.7, 1.5)]
    annotator = [A.measure_rt60(x) for x in rooms]
    answerer = [listener(x, True)["rt60_s"] for x in rooms]
    assert annotator == sorted(annotator) and answerer == sorted(answerer)
    # the bins: the small room reads dry or room, the 0.7 s room "room", the 1.5 s hall "hall"
    assert [bin_tags({"rt60_s": v}, T)["tag_reverb"] for v in annotator][1:] == ["room", "hall"]
    assert [bin_tags({"rt60_s": v}, T)["tag_reverb"] for v in answerer][1:] == ["room", "hall"]
    assert A.measure_rt60(dry) < T.rt60_s[0]


@pytest.mark.parametrize("name", ["001_en_male_low_slow.flac", "011_en_female_low_normal.flac",
                                  "016_en_female_high_slow.flac"])
def test_bandwidth_class_telephone_vs_full_band(name):
    full = speech(name)
    phone = sosfiltfilt(butter(8, [300, 3400], btype="band", fs=SR, output="sos"), full)
    for measure in (A.measure_bandwidth, lambda x: listener(x, True)["bandwidth_hz"]):
        assert bin_tags({"bandwidth_hz": measure(full)}, T)["tag_bandwidth"] == "wideband"
        assert bin_tags({"bandwidth_hz": measure(phone)}, T)["tag_bandwidth"] == "narrowband"


def test_dynamic_range_of_steady_and_alternating_levels():
    rng = np.random.default_rng(2)
    steady = rng.standard_normal(3 * SR) * 0.1
    gain = np.repeat(np.tile([10 ** (-10 / 20), 10 ** (-40 / 20)], 6), SR // 4)  # 30 dB steps every 250 ms
    alternating = rng.standard_normal(gain.size) * gain
    assert A.measure_dynamic_range(steady) < 3
    assert A.measure_dynamic_range(alternating) == pytest.approx(30, abs=3)
    assert listener(steady, False)["dynamic_range_db"] < 3
    assert listener(alternating, False)["dynamic_range_db"] == pytest.approx(30, abs=3)


def test_speech_music_tone_noise():
    t = np.arange(3 * SR) / SR
    signals = {"music": notes([[261.6, 329.6, 392.0]] * 6, [0.1 + 0.5 * i for i in range(6)], 3.2, 0.3),
               "tone": 0.3 * np.sin(2 * np.pi * 440 * t),
               "noise": np.random.default_rng(3).standard_normal(3 * SR) * 0.1,
               "silence": np.random.default_rng(4).standard_normal(3 * SR) * 1e-3}
    analyzer = A.Acoustics()
    for truth, x in signals.items():
        x = x.astype(np.float32)
        item = {"is_speech": False, "rms_dbfs": 10 * np.log10(np.mean(x.astype(float) ** 2)),
                "spectral_flatness": spectral_flatness(x.astype(np.float64))}
        assert analyzer.analyze(x, item)["sound_class"] == truth, truth
        assert listener(x, False)["sound_class"] == truth, truth
    x = speech("001_en_male_low_slow.flac").astype(np.float32)
    assert analyzer.analyze(x, {"is_speech": True})["sound_class"] == "speech"
