"""The captioner role: a dense description of the clip.

- `structured` (default): rendered from the measured tags and the transcript, with varied phrasing
  chosen by a seed and the clip_id (reproducible). It never states what was not measured.
- `openai`: the audio goes as an `input_audio` part to an OpenAI-compatible audio LLM (for example a
  Qwen3-Omni captioner behind vLLM) with the paper's captioning prompt.
- `vllm` / `hf`: the same request to the role's own replicas on the Ray cluster (`dataflux.llm.replicas`).
Every LLM backend goes through the shared request layer (`dataflux.llm.client`): the run's request
cache, limits, retries, usage and key scrubbing; a clip whose request fails keeps a null caption and the
reason under `errors`, and its batch-mates are captioned.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Literal

import numpy as np

from dataflux.annotate.base import Analyzer, audio_of, note
from dataflux.audio import wav_base64
from dataflux.languages import LANGUAGE_NAMES
from dataflux.llm.replicas import ServedEndpoint
from dataflux.settings import Section, one_of
from dataflux.stage import Resources, Result
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


class ServedCaptionConfig(Section):
    """An audio LM served on the Ray cluster by the pipeline itself (`vllm`: vLLM's engine; `hf`: transformers)."""

    backend: Literal["vllm"] = "vllm"
    endpoint: ServedEndpoint
    max_tokens: int = 512
    params: dict[str, Any] = {}  # more sampling parameters for this role (top_p, logit_bias, ...); in the cache key


class HfCaptionConfig(ServedCaptionConfig):
    backend: Literal["hf"] = "hf"


AnyCaptionConfig = one_of("backend", CaptionConfig, OpenAICaptionConfig, ServedCaptionConfig, HfCaptionConfig)


class Captioner(Analyzer):
    name = "caption"
    fields = {"caption": "", "caption_backend": "", "caption_model": "", "caption_prompt_version": ""}

    def __init__(self, config: CaptionConfig | OpenAICaptionConfig = CaptionConfig(),
                 resources: Resources | None = None):
        super().__init__(resources)
        self.config = config

    endpoint = None  # the resolved endpoint of an LLM backend (`bind`)
    cache_path: str | None = None
    client = None

    def bind(self, stack, cache_path: str | None) -> None:
        """On the driver, before the chain runs: the run's request cache, and for `vllm`/`hf` the role's
        replicas, started (or found) now and kept for the Ray job."""
        from dataflux.llm.client import Endpoint
        from dataflux.llm.replicas import start_replicas

        self.cache_path = cache_path
        c = self.config
        if c.backend == "openai":
            self.endpoint = Endpoint(base_url=c.base_url, model=c.model, api_key_env=c.api_key_env,
                                     timeout_s=c.timeout_s, max_retries=3)
        elif c.backend in ("vllm", "hf"):
            self.endpoint = start_replicas(stack, c.endpoint, c.backend)

    def setup(self) -> None:
        if self.config.backend != "structured":
            from dataflux.llm.client import LLMClient

            if self.endpoint is None:  # used on its own, without `bind` (openai only: nothing to start)
                self.bind(None, self.cache_path)
            self.client = LLMClient.open(self.endpoint, self.cache_path)

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close_cache()

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        return {"caption": structured_caption(item, self.config.seed), "caption_backend": "structured",
                "caption_model": None, "caption_prompt_version": STRUCTURED_VERSION}

    def process_batch(self, items: list[dict]) -> Result:
        """LLM backends: the batch's requests go out together (the engine batches them)."""
        if self.config.backend == "structured":
            return super().process_batch(items)
        from dataflux.llm.client import LLMError, run_all

        requests = [{"messages": caption_messages(audio_of(item)), "template_version": OPENAI_PROMPT_VERSION,
                     "temperature": 0.0, "max_tokens": self.config.max_tokens, **getattr(self.config, "params", {})}
                    for item in items]
        rows = []
        for item, reply in zip(items, run_all(self.client, requests)):
            row = dict(item)
            if isinstance(reply, LLMError):
                row.update(dict.fromkeys(self.fields))
                note(row, "errors", self.name, f"LLMError: {reply.reason}"[:500])
            else:
                row.update({"caption": reply.text.strip(), "caption_backend": self.config.backend,
                            "caption_model": self.endpoint.model, "caption_prompt_version": OPENAI_PROMPT_VERSION})
            rows.append(row)
        return Result(rows)


def caption_messages(audio: np.ndarray) -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": wav_base64(audio), "format": "wav"}},
        {"type": "text", "text": CAPTION_PROMPT}]}]


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
        parts.append(_phrase("tempo_level", a.get("tag_tempo"), pick) if a.get("tag_sound") == "music" else None)
    parts.append(_phrase("loudness_level", a.get("tag_loudness"), pick))
    parts.append(_phrase("background_noise_level", a.get("tag_quality"), pick))
    parts.append(_phrase("clipping_presence", a.get("tag_clipping"), pick))
    if a.get("tag_content") == "speech":
        parts.append(_phrase("reverberation_level", a.get("tag_reverb"), pick))
        parts.append(_phrase("audio_bandwidth", a.get("tag_bandwidth"), pick) if a.get("tag_bandwidth") == "narrowband"
                     else None)
    return " ".join(p for p in parts if p)
