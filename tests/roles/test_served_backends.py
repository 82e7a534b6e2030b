"""The served backends on real engines (tiny random Qwen2-Audio, CPU): `vllm` (vLLM's engine) and `hf`
(transformers, model/hf_server.py). The audio reaches the model, a clip the engine refuses is one reject
while its batch-mates are kept, and a re-run sends only what did not finish. Random weights give random
text: these tests check mechanics, not content."""

import numpy as np
import pytest

from dataflux.audio import TARGET_SR, encode_flac
from dataflux.llm.client import LLMClient, LLMError, run_all
from dataflux.llm.replicas import start_replicas, stop_replicas
from dataflux.llm.tiny import audio_tokens
from tests.roles.conftest import AUDIO_MAX_LEN, audio_spec
from verifiers.answerers import OpenAIAnswerer, answerer_messages, answers_of

pytestmark = [pytest.mark.slow, pytest.mark.ray]
EOS = {"logit_bias": {"50363": 100}}  # <|im_end|>, the tiny models' EOS: a random model stops at once
SECONDS = {"short": 2.0, "medium": 5.0, "long": 25.0}  # the long one's audio tokens exceed the context


@pytest.fixture(scope="module", params=["vllm", "hf"])
def served_audio(request, tiny_models, ray_session):
    """(backend, spec, endpoint): the session's vLLM replica, or an hf replica for this module."""
    if request.param == "vllm":
        yield ("vllm", *request.getfixturevalue("vllm_audio"))
        return
    spec = audio_spec(tiny_models["audio"])
    yield "hf", spec, start_replicas(None, spec, "hf")
    stop_replicas(spec, "hf")


def question(name: str) -> dict:
    n = int(SECONDS[name] * TARGET_SR)
    samples = (0.2 * np.sin(2 * np.pi * 180 * np.arange(n) / TARGET_SR)).astype(np.float32)
    return {"question_id": f"q_{name}", "clip_id": f"clp_{name}", "node_path": "speaker > voice > pitch",
            "question": "How high is the voice?", "options": ["Low", "Medium", "High", "Very high"],
            "audio": encode_flac(samples), "answers": "[]"}


def test_audio_reaches_the_engine_by_the_processors_token_rule(served_audio, tmp_path):
    backend, spec, endpoint = served_audio
    assert endpoint.model == "tiny-qwen2-audio" and endpoint.base_url.startswith("http://127.0.0.1:")
    assert start_replicas(None, spec, backend).base_url == endpoint.base_url  # found by name, not started again
    client = LLMClient(endpoint)
    short, medium = run_all(client, [{"messages": answerer_messages(question(n), "Answer."), "template_version": "t",
                                      "max_tokens": 4, "temperature": 0.0, **EOS} for n in ("short", "medium")])
    assert not isinstance(short, LLMError), short.reason
    expected = audio_tokens(int(5.0 * TARGET_SR)) - audio_tokens(int(2.0 * TARGET_SR))
    assert expected == 75
    assert medium.usage["prompt_tokens"] - short.usage["prompt_tokens"] == expected
    assert audio_tokens(int(25.0 * TARGET_SR)) > AUDIO_MAX_LEN


def test_a_clip_the_engine_refuses_is_one_reject_and_a_rerun_sends_only_it(served_audio, tmp_path):
    backend, _, endpoint = served_audio
    items = [question(n) for n in ("short", "long", "medium")]
    cache = str(tmp_path / "llm_cache.sqlite")
    answerer = OpenAIAnswerer("audio_lm", endpoint, cache, max_tokens=8, backend=backend, params=EOS)
    answerer.setup()
    result = answerer.process_batch(items)
    assert [r["question_id"] for r in result.rows] == ["q_short", "q_medium"]
    reject, = result.rejects
    assert reject["item_id"] == "q_long" and reject["reason_code"] == "answer_failed"
    assert "HTTP 400" in reject["detail"] and "(after 1 attempts)" in reject["detail"]  # a 400 is not retried
    entry, = answers_of(result.rows[0])
    assert (entry["backend"], entry["model"]) == (backend, "tiny-qwen2-audio") and entry["raw"] is not None
    answerer.teardown()
    assert answerer.client.usage.requests == 3 and answerer.client.usage.prompt_tokens > 0

    again = OpenAIAnswerer("audio_lm", endpoint, cache, max_tokens=8, backend=backend, params=EOS)
    again.setup()
    rerun = again.process_batch(items)
    again.teardown()
    assert [r["answers"] for r in rerun.rows] == [r["answers"] for r in result.rows]
    assert (again.client.usage.cache_hits, again.client.usage.requests) == (2, 1)
