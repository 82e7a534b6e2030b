import json

import numpy as np
import pytest

from dataflux.annotate import hallucination
from dataflux.annotate.asr import AsrConfig, SpeakingRate, Whisper, count_syllables
from dataflux.annotate.base import Analyzer, ModelLoadError
from dataflux.annotate.caption import structured_caption
from dataflux.annotate.signal import Levels, Snr, spectral_flatness
from dataflux.annotate.tags import TagThresholds, Tagger

SR = 16000


def item(audio, **fields):
    return {"clip_id": "clp_x", "pcm": np.asarray(audio, np.float32).tobytes(), **fields}


def run(analyzer, *items):
    analyzer.setup()
    return analyzer.process_batch(list(items)).rows


def test_levels_of_a_known_sine():
    t = np.arange(2 * SR) / SR
    amplitude = 0.1
    row, = run(Levels(), item(amplitude * np.sin(2 * np.pi * 997 * t)))
    assert row["duration_s"] == 2.0
    assert abs(row["peak_dbfs"] - 20 * np.log10(amplitude)) < 0.01
    assert abs(row["rms_dbfs"] - (20 * np.log10(amplitude) - 3.01)) < 0.05
    # BS.1770: a 997 Hz sine at 0 dBFS peak reads -3.01 LUFS
    assert abs(row["loudness_lufs"] - (20 * np.log10(amplitude) - 3.01)) < 0.3
    assert row["clipping_ratio"] == 0.0
    clipped, = run(Levels(), item(np.clip(2 * np.sin(2 * np.pi * 100 * t), -1, 1)))
    assert clipped["clipping_ratio"] > 0.3


def test_spectral_flatness_separates_tones_from_noise():
    t = np.arange(SR) / SR
    assert spectral_flatness(np.sin(2 * np.pi * 440 * t)) < 0.01
    assert spectral_flatness(np.random.default_rng(0).standard_normal(SR)) > 0.4


def test_snr_from_vad_segments():
    rng = np.random.default_rng(0)
    noise = 0.001 * rng.standard_normal(3 * SR)
    audio = noise.copy()
    audio[SR:2 * SR] += 0.1 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)
    row, = run(Snr(), item(audio, is_speech=True, speech_segments=[{"start_s": 1.0, "end_s": 2.0}]))
    expected = 10 * np.log10((0.1 ** 2 / 2) / 0.001 ** 2)
    assert abs(row["snr_db"] - expected) < 1.0


def test_speech_only_analyzers_skip_non_speech_with_a_reason():
    row, = run(SpeakingRate(), item(np.zeros(SR), is_speech=False))
    assert row["speech_rate_wps"] is None
    assert json.loads(row["skipped"]) == {"speaking_rate": "no speech detected (VAD)"}


class Flaky(Analyzer):
    name = "flaky"
    fields = {"value": ""}

    def analyze(self, audio, item):
        if item["clip_id"] == "bad":
            raise RuntimeError("boom")
        return {"value": 1.0}


def test_an_analyzer_failing_on_one_clip_leaves_nulls_and_a_reason():
    good, bad = run(Flaky(), item(np.ones(10)), {**item(np.ones(10)), "clip_id": "bad"})
    assert good["value"] == 1.0 and good.get("errors") is None
    assert bad["value"] is None and json.loads(bad["errors"]) == {"flaky": "RuntimeError: boom"}
    after, = run(Levels(), bad)  # the next analyzer still runs on that clip
    assert after["duration_s"] is not None and json.loads(after["errors"]) == {"flaky": "RuntimeError: boom"}


def test_a_model_that_cannot_load_names_the_model_and_the_config_key(tmp_path):
    with pytest.raises(ModelLoadError, match=r"model '.*nope' chosen by `annotate.asr.model`"):
        Whisper(AsrConfig(model=str(tmp_path / "nope"))).setup()


def test_speaking_rate_and_syllables():
    words = [{"word": w, "start_s": i * 0.5, "end_s": i * 0.5 + 0.4, "prob": 1.0}
             for i, w in enumerate(["please", "remember", "the", "umbrella", "."])]
    row, = run(SpeakingRate(), item(np.zeros(SR), is_speech=True, words=words))
    assert row["num_words"] == 4
    assert abs(row["speech_rate_wps"] - 4 / 1.9) < 1e-9
    assert [count_syllables(w) for w in ("please", "remember", "the", "umbrella", "table")] == [1, 3, 1, 3, 2]


@pytest.mark.parametrize("text, no_speech, expect", [
    ("The weather is fine today.", 0.1, None),
    ("Thank you for watching!", 0.1, "known hallucination phrase"),
    ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", 0.1, "repeated n-gram"),
    ("go go go go go go", 0.1, "repeated n-gram"),
    ("Hello there.", 0.9, "no-speech probability"),
])
def test_hallucination_guard(text, no_speech, expect):
    reasons = hallucination.check(text, no_speech, [], [])
    assert (not reasons) if expect is None else any(expect in r for r in reasons)


def test_words_outside_vad_speech_are_flagged():
    words = [{"word": "hi", "start_s": 3.0, "end_s": 3.5}]
    assert hallucination.check("hi", 0.1, words, [{"start_s": 0.0, "end_s": 1.0}])
    assert not hallucination.check("hi", 0.1, words, [{"start_s": 2.9, "end_s": 3.6}])


def test_tags_bin_relative_to_gender_and_by_threshold():
    tagger = Tagger(TagThresholds())
    base = dict(is_speech=True, speech_rate_sps=2.9, loudness_lufs=-35.0, dnsmos_bak=3.9, snr_db=40.0,
                clipping_ratio=0.0, duration_s=4.0, num_speakers=1, spectral_flatness=0.02)
    male, = run(tagger, item(np.zeros(10), gender="male", f0_median_hz=150.0, **base))
    female, = run(tagger, item(np.zeros(10), gender="female", f0_median_hz=150.0, **base))
    assert male["tag_pitch"] == "high" and female["tag_pitch"] == "low"
    assert (male["tag_rate"], male["tag_loudness"], male["tag_quality"], male["tag_duration"]) == (
        "slow", "quiet", "clean", "medium")
    noisy, = run(tagger, item(np.zeros(10), gender="male", f0_median_hz=110.0, **{**base, "dnsmos_bak": 2.1}))
    assert noisy["tag_quality"] == "noisy" and noisy["tag_pitch"] == "medium"


def test_structured_caption_is_reproducible_and_states_only_what_was_measured():
    a = dict(clip_id="clp_1", duration_s=3.2, tag_content="speech", gender="female", tag_pitch="high",
             language="en", tag_rate="fast", transcript="See you at noon.", hallucination_flag=False,
             tag_loudness="normal", tag_quality="clean", num_speakers=1)
    assert structured_caption(a, 0) == structured_caption(a, 0)
    assert len({structured_caption({**a, "clip_id": f"clp_{i}"}, 0) for i in range(20)}) > 1
    text = structured_caption(a, 0)
    assert "See you at noon." in text and "English" in text
    assert "See you" not in structured_caption({**a, "hallucination_flag": True}, 0)
    silent = structured_caption(dict(clip_id="c", duration_s=4.0, tag_content="non_speech", tag_timbre="tonal"), 0)
    assert "speech" in silent.lower() or "no one speaks" in silent.lower()
    assert "voice" not in silent


def test_gender_falls_back_to_f0_only_when_the_classifier_is_unsure():
    from dataflux.annotate.speaker import Gender

    g = Gender()
    answers = iter([{"female_probability": 0.6, "confidence": 0.2},
                    {"female_probability": 0.6, "confidence": 0.2},
                    {"female_probability": 0.99, "confidence": 0.98}])
    g.predict = lambda pcm, rate: next(answers)
    audio = 0.1 * np.sin(2 * np.pi * 100 * np.arange(SR) / SR)
    unsure_low, unsure_mid, sure = g.process_batch([
        item(audio, is_speech=True, f0_median_hz=90.0), item(audio, is_speech=True, f0_median_hz=165.0),
        item(audio, is_speech=True, f0_median_hz=90.0)]).rows
    assert (unsure_low["gender"], unsure_low["gender_source"]) == ("male", "f0_rule")
    assert (unsure_mid["gender"], unsure_mid["gender_source"]) == ("female", "voice2gender")
    assert (sure["gender"], sure["gender_source"]) == ("female", "voice2gender")


def test_annotate_skip_leaves_chain_entries_out_and_refuses_the_required_ones():
    from dataflux.stages.annotate import AnnotateConfig, build_chain

    chain = build_chain(AnnotateConfig(skip=("asr", "speakers", "dnsmos")))
    assert [s.name for s in chain] == ["decode", "vad", "measure", "pitch", "gender", "acoustics", "describe"]
    with pytest.raises(ValueError, match="cannot skip decode"):
        build_chain(AnnotateConfig(skip=("decode",)))
    with pytest.raises(ValueError, match="cannot skip whisper"):
        build_chain(AnnotateConfig(skip=("whisper",)))
