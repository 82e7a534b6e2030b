import base64
import io

import numpy as np
import soundfile as sf

from dataflux.annotate.caption import CAPTION_PROMPT, Captioner, OpenAICaptionConfig
from tests.openai_double import OpenAIDouble, completion


def test_openai_captioner_sends_the_audio_as_an_input_audio_part(monkeypatch):
    monkeypatch.setenv("DFX_TEST_KEY", "sk-test-secret")
    audio = (0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    with OpenAIDouble(lambda body: (200, completion("A man hums a low note in a quiet room."), {})) as server:
        captioner = Captioner(OpenAICaptionConfig(model="qwen3-omni-captioner", base_url=server.base_url,
                                            api_key_env="DFX_TEST_KEY"))
        captioner.setup()
        row, = captioner.process_batch([{"clip_id": "clp_1", "pcm": audio.tobytes()}]).rows
    assert row["caption"] == "A man hums a low note in a quiet room."
    assert (row["caption_backend"], row["caption_model"], row["caption_prompt_version"]) == (
        "openai", "qwen3-omni-captioner", "caption-openai-v1")
    request, = server.requests
    assert request["model"] == "qwen3-omni-captioner"
    audio_part, text_part = request["messages"][0]["content"]
    assert text_part == {"type": "text", "text": CAPTION_PROMPT}
    assert audio_part["type"] == "input_audio" and audio_part["input_audio"]["format"] == "wav"
    decoded, sr = sf.read(io.BytesIO(base64.b64decode(audio_part["input_audio"]["data"])))
    assert sr == 16000 and len(decoded) == 16000
    assert {k.lower(): v for k, v in server.headers[0].items()}["authorization"] == "Bearer sk-test-secret"


def test_a_truncated_caption_is_an_error_for_that_clip_only():
    with OpenAIDouble(lambda body: (200, completion("A man", finish_reason="length"), {})) as server:
        captioner = Captioner(OpenAICaptionConfig(model="m", base_url=server.base_url))
        captioner.setup()
        row, = captioner.process_batch([{"clip_id": "c", "pcm": np.zeros(1600, np.float32).tobytes()}]).rows
    assert row["caption"] is None and "finish_reason=length" in row["errors"]
