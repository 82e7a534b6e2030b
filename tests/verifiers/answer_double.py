"""An audio LLM stand-in over HTTP (no audio LLM runs offline here): it checks that the audio arrives
as a decodable `input_audio` WAV part and answers deterministically from the request's text."""

import base64
import hashlib
import io
import threading
import time

import soundfile as sf

from tests.openai_double import OpenAIDouble, completion


def audio_answer(delay_s: float = 0.0, log: list | None = None):
    lock = threading.Lock()

    def reply(body: dict):
        parts = body["messages"][-1]["content"]
        audio = next(p["input_audio"] for p in parts if p["type"] == "input_audio")
        samples, sr = sf.read(io.BytesIO(base64.b64decode(audio["data"])))
        assert audio["format"] == "wav" and sr == 16000 and len(samples) > 0
        text = next(p["text"] for p in parts if p["type"] == "text")
        letter = "ABCD"[int(hashlib.sha256(text.encode()).hexdigest(), 16) % 4]
        time.sleep(delay_s)
        if log is not None:
            with lock:
                log.append(body)
        return 200, completion(f"<think>Listening closely.</think>I hear it clearly.\nAnswer: {letter}"), {}

    return OpenAIDouble(reply)
