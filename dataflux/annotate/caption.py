"""The captioner role: a dense description of the clip.

- `structured` (default): rendered from the measured tags and the transcript, with varied phrasing
  chosen by a seed and the clip_id (reproducible). It never states what was not measured.
- `openai`: the audio goes as an `input_audio` part to an OpenAI-compatible audio LLM (for example a
  Qwen3-Omni captioner behind vLLM) with the paper's captioning prompt.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Literal

import numpy as np

from dataflux.annotate.base import Analyzer
from dataflux.audio import wav_base64
from dataflux.languages import LANGUAGE_NAMES
from dataflux.settings import Section, one_of
from dataflux.stage import Resources
from dataflux.taxonomy import leaf_named

CAPTION_PROMPT = ("Please provide a comprehensive description of the input audio, covering all details: "
                  "the speakers and their voices (gender, age, pitch, speaking rate, emotion), what is said, "
                  "the language, background sounds, music, the acoustic environment and the recording quality.")
OPENAI_PROMPT_VERSION = "caption-openai-v1"
STRUCTURED_VERSION = "caption-structured-v1"


class CaptionConfig(Section):
    """The structured captioner (the default): a caption written from the measured tags."""

    backend: Literal["structured"] = "structured"
    seed: int = 0


class OpenAICaptionConfig(Section):
    """An audio captioner behind any OpenAI-compatible endpoint."""

    backend: Literal["openai"] = "openai"
    model: str  # the served model name
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never from config
    max_tokens: int = 512
    timeout_s: float = 120.0


AnyCaptionConfig = one_of("backend", CaptionConfig, OpenAICaptionConfig)


class Captioner(Analyzer):
    name = "caption"
    fields = {"caption": "", "caption_backend": "", "caption_model": "", "caption_prompt_version": ""}

    def __init__(self, config: CaptionConfig | OpenAICaptionConfig = CaptionConfig(),
                 resources: Resources | None = None):
        super().__init__(resources)
        self.config = config

    def setup(self) -> None:
        if self.config.backend == "openai":
            from openai import OpenAI

            self.client = OpenAI(base_url=self.config.base_url, api_key=os.environ.get(self.config.api_key_env)
                                 or "not-needed", timeout=self.config.timeout_s, max_retries=3)

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        if self.config.backend == "structured":
            return {"caption": structured_caption(item, self.config.seed), "caption_backend": "structured",
                    "caption_model": None, "caption_prompt_version": STRUCTURED_VERSION}
        reply = self.client.chat.completions.create(
            model=self.config.model, max_tokens=self.config.max_tokens, temperature=0.0,
            messages=[{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": wav_base64(audio), "format": "wav"}},
                {"type": "text", "text": CAPTION_PROMPT}]}])
        choice = reply.choices[0]
        if choice.finish_reason not in (None, "stop"):
            raise RuntimeError(f"caption incomplete: finish_reason={choice.finish_reason}")
        return {"caption": (choice.message.content or "").strip(), "caption_backend": "openai",
                "caption_model": self.config.model, "caption_prompt_version": OPENAI_PROMPT_VERSION}


def _phrase(leaf: str, key: str | None, pick) -> str | None:
    """The leaf spec's captioner phrasing for a tag value: one of several picked, a single one as it is."""
    phrasings = leaf_named(leaf).caption.get(key) if key else None
    if not phrasings:
        return None
    return phrasings[0] if len(phrasings) == 1 else pick(phrasings)


def structured_caption(a: dict, seed: int = 0) -> str:
    rng = random.Random(int(hashlib.sha256(f"{seed}:{a['clip_id']}".encode()).hexdigest()[:16], 16))
    pick = rng.choice
    duration = a.get("duration_s") or 0.0
    parts = []
    if a.get("tag_content") == "speech":
        gender = a.get("gender")
        who = (_phrase("pitch_relative_to_gender", f"{gender} {a.get('tag_pitch')}", pick)
               or _phrase("speaker_gender", gender, pick) or "a voice")
        lang = LANGUAGE_NAMES.get(a.get("language") or "", a.get("language"))
        speakers = a.get("num_speakers")
        opener = pick([f"A {duration:.1f}-second clip in which {who} speaks",
                       f"In this {duration:.1f}-second recording, {who} speaks"])
        rate = _phrase("speaking_rate_level", a.get("tag_rate"), pick)
        parts.append(opener + (f" {lang}" if lang else "") + (f" {rate}" if rate else "") + ".")
        if speakers and speakers > 1:
            parts.append(f"About {speakers} different voices can be told apart.")
        if a.get("transcript") and not a.get("hallucination_flag"):
            parts.append(pick(['The words are: "{}"', 'What is said: "{}"']).format(a["transcript"]))
    else:
        parts.append(pick([f"A {duration:.1f}-second clip with no speech.",
                           f"No one speaks in this {duration:.1f}-second clip."]))
        parts.append(_phrase("speech_music_or_noise", a.get("tag_timbre"), pick))
    parts.append(_phrase("loudness_level", a.get("tag_loudness"), pick))
    parts.append(_phrase("background_noise_level", a.get("tag_quality"), pick))
    parts.append(_phrase("clipping_presence", a.get("tag_clipping"), pick))
    return " ".join(p for p in parts if p)
