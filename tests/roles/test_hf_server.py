"""The `hf` backend's server in this process (no Ray): an Eureka-Audio checkpoint answers through the
OpenAI protocol with the audio counted by its own processor's rule, and a text LM's replies follow a
JSON schema under xgrammar (random weights: mechanics, not content)."""

import threading
from http.server import ThreadingHTTPServer

import numpy as np
import pytest
from pydantic import BaseModel, Field

from dataflux.audio import TARGET_SR, encode_flac
from dataflux.llm.client import Endpoint, LLMClient, LLMError, run_all
from model.hf_server import Batcher, Engine, make_handler
from verifiers.answerers import answerer_messages

pytestmark = pytest.mark.slow


def serve(engine: Engine, name: str):
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Batcher(engine, max_batch=4), name))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, LLMClient(Endpoint(base_url=f"http://127.0.0.1:{server.server_port}/v1", model=name,
                                      max_retries=1))


def item(seconds: float) -> dict:
    n = int(seconds * TARGET_SR)
    samples = (0.2 * np.sin(2 * np.pi * 150 * np.arange(n) / TARGET_SR)).astype(np.float32)
    return {"question": "How high is the voice?", "options": ["Low", "Medium", "High", "Very high"],
            "audio": encode_flac(samples)}


def test_an_eureka_checkpoint_answers_with_the_audio_counted_by_its_processor(tmp_path):
    from model.tiny import tiny_model_and_processor

    model, processor = tiny_model_and_processor(seed=0)
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    server, client = serve(Engine(str(tmp_path / "ckpt"), device="cpu"), "eureka-tiny")
    eos = {str(processor.tokenizer.convert_tokens_to_ids("<|im_end|>")): 100}  # a random model stops at once
    try:
        short, long = run_all(client, [{"messages": answerer_messages(item(s), "Answer."), "template_version": "t",
                                        "max_tokens": 6, "temperature": 0.0, "logit_bias": eos} for s in (1.0, 3.0)])
    finally:
        server.shutdown()
    assert not isinstance(short, LLMError), short.reason
    expected = processor.num_audio_tokens(3 * TARGET_SR) - processor.num_audio_tokens(1 * TARGET_SR)
    assert expected > 0 and long.usage["prompt_tokens"] - short.usage["prompt_tokens"] == expected
    assert short.usage["completion_tokens"] <= 6


class Pick(BaseModel):
    choice: str = Field(pattern="^(A|B|C|D)$")
    why: str = Field(max_length=40)


def test_a_text_lms_replies_follow_the_json_schema(tmp_path):
    from dataflux.llm.tiny import build_text_lm

    server, client = serve(Engine(str(build_text_lm(tmp_path / "text")), device="cpu"), "qwen3-tiny")
    try:
        replies = run_all(client, [{"messages": [{"role": "user", "content": f"Pick one ({i})."}],
                                    "template_version": "t", "schema": Pick, "max_tokens": 64,
                                    "temperature": 0.0} for i in range(3)])
    finally:
        server.shutdown()
    for reply in replies:
        assert not isinstance(reply, LLMError), reply.reason
        assert reply.parsed.choice in "ABCD" and len(reply.parsed.why) <= 40
