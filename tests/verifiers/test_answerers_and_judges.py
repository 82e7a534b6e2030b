"""The openai answerer (audio as an input_audio part), the analyzer answerers on real audio, and the
LLM judge against a real llama.cpp server."""

import json

import numpy as np
import pytest

from dataflux.annotate.tags import TagThresholds
from dataflux.audio import encode_flac, to_pcm16
from dataflux.llm.client import Endpoint
from dataflux.llm.server import MODEL_ALIAS
from tests.conftest import DEMO_AUDIO
from tests.openai_double import OpenAIDouble
from tests.verifiers.answer_double import audio_answer
from verifiers.answerers import AnalyzerAnswerer, OpenAIAnswerer, answers_of
from verifiers.judges import LLMJudge, Verdict

RATE = "delivery > speaking_rate > tempo > speaking_rate_level"
CONTENT = "non_speech_events > sound_type > presence > speech_music_or_noise"
GENDER = "speaker_traits > gender > perceived_gender > speaker_gender"


def flac_of(name: str) -> bytes:
    from dataflux.audio import decode, to_mono_16k

    return encode_flac(to_pcm16(to_mono_16k(decode((DEMO_AUDIO / name).read_bytes()))))


def item(qid, node, options, audio, clip="c1"):
    return {"question_id": qid, "clip_id": clip, "node_path": node, "question": "q?", "options": options,
            "audio": audio, "answers": "[]", "round": 0}


def test_openai_answerer_sends_wav_and_parses_the_final_letter(tmp_path):
    audio = encode_flac(to_pcm16(np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3))
    with audio_answer() as double:
        stage = OpenAIAnswerer("omni", Endpoint(base_url=double.base_url, model="omni"), str(tmp_path / "c.sqlite"))
        stage.setup()
        out = stage.process_batch([item("q1", RATE, ["Slowly", "At an ordinary pace", "Quickly", "No speech"], audio)])
        stage.teardown()
    entry, = answers_of(out.rows[0])
    assert entry["letter"] in "ABCD" and entry["parse"] == "anchored" and entry["backend"] == "openai"
    assert "<think>" not in entry["reasoning"] and entry["reasoning"].endswith(f"Answer: {entry['letter']}")


def test_openai_answerer_failure_is_a_reject_with_a_reason(tmp_path):
    with OpenAIDouble(lambda body: (400, {"error": {"message": "bad audio"}}, {})) as double:
        stage = OpenAIAnswerer("omni", Endpoint(base_url=double.base_url, model="omni", max_retries=0), None)
        stage.setup()
        out = stage.process_batch([item("q1", RATE, ["a", "b", "c", "d"], encode_flac(to_pcm16(np.zeros(8000))))])
    assert not out.rows and out.rejects[0]["reason_code"] == "answer_failed" and "omni" in out.rejects[0]["detail"]


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["whisper", "signal"])
def test_analyzer_answerers_answer_from_the_audio_and_abstain_outside_it(stack):
    speech, tone = flac_of("016_en_female_high_slow.flac"), flac_of("038_tone_440hz.ogg")
    stage = AnalyzerAnswerer(stack, stack, TagThresholds())
    stage.setup()
    content = ["Someone speaking", "A tone or music, without speech", "Noise, without speech", "Complete silence"]
    gender = ["A man's voice", "A woman's voice", "A young child's voice", "No voice can be heard"]
    emotion = ["Happy", "Sad", "Angry", "Neutral"]
    rows = stage.process_batch([
        item("q1", CONTENT, content, speech, "speech"), item("q2", GENDER, gender, speech, "speech"),
        item("q3", CONTENT, content, tone, "tone"),
        item("q4", "emotion_attitude > emotion > basic_emotion > emotion_category", emotion, speech, "speech"),
    ]).rows
    letters = [answers_of(r)[0]["letter"] for r in rows]
    assert letters == ["A", "B", "B", None]
    assert all("caption" not in answers_of(r)[0]["reasoning"] for r in rows)


@pytest.mark.slow
def test_llm_judge_on_a_real_llama_cpp_server(llm_server, tmp_path):
    endpoint = Endpoint(base_url=llm_server.base_url, model=MODEL_ALIAS, flavor="llama.cpp", max_retries=2)
    judge = LLMJudge(endpoint, str(tmp_path / "cache.sqlite"), "local")
    judge.setup()
    answers = [{"answerer": "a", "backend": "analyzer", "model": "m", "letter": "B",
                "reasoning": "The voice is about 210 Hz, a woman's voice.\nAnswer: B"},
               {"answerer": "b", "backend": "analyzer", "model": "m", "letter": "B",
                "reasoning": "A woman's voice.\nAnswer: B"}]
    it = {**item("q1", GENDER, ["A man's voice", "A woman's voice", "A child", "Nobody"], b""),
          "answers": json.dumps(answers),
          "annotation": json.dumps({"caption": "A woman speaks slowly.", "gender": "female"})}
    # asked three times (no cache in the second judge): llama.cpp reuses the KV cache of the prompt
    # prefix shared with the request before, so only repeats after the same request start from the same
    # state; those two are compared
    out = judge.process_batch([it])
    judge.teardown()
    again = LLMJudge(endpoint, None, "local")
    again.setup()
    second, repeat = again.process_batch([it]), again.process_batch([it])
    again.teardown()
    assert not out.rejects and not second.rejects and not repeat.rejects
    row = out.rows[0]
    # what is determined whatever a 135M model thinks: the item passes through unchanged, the verdict is
    # the model's own reply validated under the schema, and greedy decoding from one state repeats itself
    assert {k: row[k] for k in it} == it
    verdict = Verdict.model_validate_json(row["verdict"])
    assert verdict == Verdict.model_validate(json.loads(row["judge_raw"], strict=False))
    assert repeat.rows[0]["judge_raw"] == second.rows[0]["judge_raw"] and again.client.usage.cache_hits == 0
    assert (row["judge_backend"], row["judge_model"], row["judge_prompt_version"]) == ("local", MODEL_ALIAS,
                                                                                        "judge-v1")
