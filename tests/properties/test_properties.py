"""Property-based tests (hypothesis): decoding arbitrary bytes, answer parsing, the keep/discard
policy, the answer-position balance and ID determinism."""

import io
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflux.audio import AudioError, decode
from dataflux.generate.writers import question_id
from dataflux.mcq import LETTERS, extract_letter
from verifiers.filters import Balancer
from verifiers.policy import Policy

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes_decode_or_fail_with_a_reason_code(data):
    try:
        decoded = decode(data)
    except AudioError as e:
        assert e.reason_code and e.detail
    else:
        assert decoded.samples.size > 0 and np.isfinite(decoded.samples).all()


def wav_header(channels: int, rate: int, bits: int, data_size: int) -> bytes:
    block = channels * bits // 8
    u32 = 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", (36 + data_size) & u32) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate & u32, (rate * block) & u32, block & 0xFFFF, bits)
            + b"data" + struct.pack("<I", data_size & u32))


@SETTINGS
@given(st.integers(0, 70000), st.sampled_from([0, 1, 3, 8000, 16000, 10 ** 9]), st.sampled_from([8, 16, 24, 7]),
       st.integers(0, 2 ** 32 - 1), st.binary(max_size=2048))
def test_mangled_wav_headers_never_crash_the_decoder(channels, rate, bits, size, payload):
    data = wav_header(channels % 65536, rate, bits, size) + payload
    try:
        decoded = decode(data)
    except AudioError as e:
        assert e.reason_code
    else:
        assert np.isfinite(decoded.samples).all()


OPTIONS = st.lists(st.text(st.characters(codec="ascii", categories=["L", "Zs"]), min_size=2, max_size=20),
                   min_size=2, max_size=4, unique=True)


@SETTINGS
@given(OPTIONS, st.data())
def test_an_anchored_final_answer_is_always_read(options, data):
    letter = data.draw(st.sampled_from(LETTERS[:len(options)]))
    prefix = data.draw(st.text(max_size=80))
    got, how = extract_letter(f"{prefix}\nAnswer: {letter}", options)
    assert (got, how) == (letter, "anchored")


@SETTINGS
@given(st.text(max_size=300), OPTIONS)
def test_parsing_never_invents_a_letter_outside_the_options(text, options):
    letter, how = extract_letter(text, options)
    assert (letter is None) == (how == "unparsed")
    assert letter is None or LETTERS.index(letter) < len(options)


VERDICT = st.fixed_dictionaries({
    "consensus": st.booleans(), "consistency_with_caption": st.sampled_from(["STRONG_MATCH", "WEAK_MATCH", "CONFLICT"]),
    "winner": st.sampled_from(["MODEL_A", "MODEL_B", "TIE", "NONE"]),
    "final_action": st.sampled_from(["KEEP_USING_WINNER", "DISCARD"])})
LETTER = st.one_of(st.none(), st.sampled_from(LETTERS))


@SETTINGS
@given(VERDICT, st.lists(LETTER, min_size=2, max_size=2))
def test_the_default_policy_never_keeps_a_conflict_a_missing_winner_or_a_split(verdict, letters):
    reason = Policy().decide(verdict, letters)
    if verdict["consistency_with_caption"] == "CONFLICT" or verdict["winner"] == "NONE":
        assert reason is not None
    if None not in letters and letters[0] != letters[1]:
        assert reason is not None
    if verdict["final_action"] == "DISCARD":
        assert reason is not None
    assert reason is None or reason in ("conflict", "no_winner", "unverified", "judge_discard", "ambiguous",
                                        "no_consensus", "weak_match")


@SETTINGS
@given(st.lists(st.tuples(st.text(min_size=1, max_size=12), st.sampled_from(LETTERS)), min_size=1, max_size=60))
def test_balancing_keeps_every_key_right_and_counts_within_one(items):
    balancer = Balancer()
    for i, (qid, letter) in enumerate(items):
        options = [f"{qid}-{j}" for j in range(4)]
        new_options, new_letter, mapping = balancer.place(f"{i}{qid}", options, letter)
        assert new_options[LETTERS.index(new_letter)] == options[LETTERS.index(letter)]
        assert sorted(new_options) == sorted(options) and sorted(mapping.values()) == list(LETTERS)
    counts = [balancer.counts[x] for x in LETTERS]
    assert max(counts) - min(counts) <= 1


@SETTINGS
@given(st.text(min_size=1), st.text(min_size=1), st.integers(0, 5), st.integers(0, 9), st.text(min_size=1))
def test_question_ids_are_deterministic_and_distinct_per_round(clip, node, round_, index, version):
    a = question_id(clip, node, round_, index, version)
    assert a == question_id(clip, node, round_, index, version) and a.startswith("q_") and len(a) == 26
    assert a != question_id(clip, node, round_ + 1, index, version)


@SETTINGS
@given(st.integers(0, 2 ** 32 - 1), st.floats(0.001, 1.0))
def test_clip_ids_follow_content_only(seed, level):
    import soundfile as sf

    from dataflux.audio import pcm16_hash, to_mono_16k, to_pcm16

    samples = np.random.default_rng(seed).uniform(-level, level, 1600).astype(np.float32)
    pcm = to_pcm16(samples)
    buf_wav, buf_flac = io.BytesIO(), io.BytesIO()
    sf.write(buf_wav, pcm, 16000, format="WAV", subtype="PCM_16")
    sf.write(buf_flac, pcm, 16000, format="FLAC", subtype="PCM_16")
    hashes = set()
    for data in (buf_wav.getvalue(), buf_flac.getvalue()):
        try:
            decoded = decode(data)
        except AudioError:
            return  # e.g. all silence: a reject, not an id
        hashes.add(pcm16_hash(to_pcm16(to_mono_16k(decoded))))
    assert len(hashes) == 1  # the same samples in two containers give one id
