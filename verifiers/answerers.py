"""Answerers: each answers every question on its own, from the audio, with reasoning and a letter (or
abstains). Items are questions `{question_id, clip_id, node_path, question, options, audio}`; each
answerer appends one entry to `item["answers"]`.

- `analyzer`: measures the audio again with an independent stack (`measure.py`) and maps the options
  through the taxonomy's bins (`labels.py`); abstains outside what it can measure.
- `openai`: an audio LLM behind any OpenAI-compatible endpoint, the audio as an `input_audio` part.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np

from dataflux.annotate.tags import TagThresholds
from dataflux.audio import decode_flac, wav_base64
from dataflux.mcq import LETTERS, extract_letter, mcq_prompt, strip_think
from dataflux.stage import Resources, Result, Stage
from verifiers.labels import label_from_tags, option_for, tags_from_measures

ANSWERER_PROMPT_VERSION = "answerer-v1"
INPUTS = ("question_id", "clip_id", "node_path", "question", "options", "audio")


def answers_of(item: dict) -> list[dict]:
    """Answers travel as JSON text: items cross Ray Data as Arrow rows, where a nested value that is
    null in one block and typed in another breaks the schema."""
    return json.loads(item.get("answers") or "[]")


def with_answer(item: dict, entry: dict) -> dict:
    return {**item, "answers": json.dumps(answers_of(item) + [entry])}


def annotation_of(item: dict) -> dict:
    value = item.get("annotation")
    return json.loads(value) if isinstance(value, str) else (value or {})


def leaf_of(node_path: str) -> str:
    return node_path.rsplit(" > ", 1)[-1]


def answer(name: str, backend: str, model: str | None, letter: str | None, reasoning: str,
           raw: str | None = None, how: str | None = None) -> dict:
    return {"answerer": name, "backend": backend, "model": model, "letter": letter, "reasoning": reasoning,
            "raw": raw, "parse": how}


class Answerer(Stage):
    version = "1"
    inputs = INPUTS

    def __init__(self, name: str, resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.5, batch_size=16))
        self.name = name


def _evidence(leaf: str, label: str, m: dict) -> str:
    f0, rate, lufs, snr = m.get("f0_median_hz"), m.get("rate_sps"), m.get("loudness_lufs"), m.get("snr_db")
    if leaf == "speaker_gender":
        return f"The voice's typical pitch is about {f0:.0f} Hz, which is in the range of a {label} voice"
    if leaf == "pitch_relative_to_gender":
        return f"The voice sits around {f0:.0f} Hz, which is {label} for a voice of this kind"
    if leaf == "speaking_rate_level":
        return f"I count about {rate:.1f} syllables per second, which is a {label} pace"
    if leaf == "loudness_level":
        return f"The speech plays at about {lufs:.0f} LUFS, which sounds {label}"
    if leaf == "background_noise_level":
        if snr is not None:
            return f"The voice stands about {snr:.0f} dB above the background, so the background is {label}"
        return "There is no voice, and the whole clip is broadband noise"
    if leaf == "clipping_presence":
        return ("Stretches of the waveform sit flat at full scale, which is clipping" if label == "clipped"
                else "The waveform never sits flat at full scale, so nothing clips")
    if leaf == "speech_music_or_noise":
        return {"speech": "I hear a voice forming words", "tonal": "I hear steady pitched tones and no voice",
                "noise_like": "I hear a hiss-like noise with no pitch and no voice"}[label]
    if leaf == "number_of_speakers":
        return ("The voice keeps one pitch range throughout, so it is one person" if label == "one"
                else "The pitch jumps between two separate ranges, as two different voices do")
    if leaf == "language_identity":
        return "The words are clearly recognisable English words"
    return f"What I hear points to {label}"


class AnalyzerAnswerer(Answerer):
    """Answers from its own measurements; never sees the annotations, the caption or the key."""

    def __init__(self, name: str, stack: str, thresholds: TagThresholds = TagThresholds(), threads: int = 0,
                 resources: Resources | None = None):
        super().__init__(name, resources)
        self.stack_name, self.thresholds, self.threads = stack, thresholds, threads
        self._measures: OrderedDict[str, dict] = OrderedDict()

    def setup(self) -> None:
        from verifiers.measure import make_stack

        self.stack = make_stack(self.stack_name, self.threads)

    def measures(self, item: dict) -> dict:
        """One measurement per clip (a clip's questions arrive together), kept for the last 64 clips."""
        clip = item["clip_id"]
        if clip not in self._measures:
            samples, _ = decode_flac(item["audio"])
            self._measures[clip] = self.stack.measure(samples.astype(np.float32))
            if len(self._measures) > 64:
                self._measures.popitem(last=False)
        return self._measures[clip]

    def process_batch(self, items: list[dict]) -> Result:
        rows = []
        for item in items:
            m = self.measures(item)
            leaf = leaf_of(item["node_path"])
            label = label_from_tags(leaf, tags_from_measures(m, self.thresholds), self.thresholds)
            index = option_for(leaf, label, item["options"])
            backend, model = "analyzer", f"analyzer:{self.stack_name}"
            if index is None:
                why = "I cannot tell this from what I can hear" if label is None else \
                    f"I hear {label}, but no single option says so"
                entry = answer(self.name, backend, model, None, why)
            else:
                letter = LETTERS[index]
                reasoning = (f"{_evidence(leaf, label, m)}. That matches \"{item['options'][index]}\".\n"
                             f"Answer: {letter}")
                entry = answer(self.name, backend, model, letter, reasoning, how="measured")
            rows.append(with_answer(item, entry))
        return Result(rows)


def answerer_messages(item: dict, system: str) -> list[dict]:
    samples, sr = decode_flac(item["audio"])
    return [{"role": "system", "content": system},
            {"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": wav_base64(samples, sr), "format": "wav"}},
                {"type": "text", "text": mcq_prompt(item["question"], item["options"])}]}]


class OpenAIAnswerer(Answerer):
    """An audio reasoning model (e.g. Qwen3-Omni-Thinking, Step-Audio-R1 behind vLLM)."""

    def __init__(self, name: str, endpoint, cache_path: str | None, max_tokens: int = 2048,
                 resources: Resources | None = None):
        super().__init__(name, resources or Resources(num_cpus=0.1, batch_size=16))
        self.endpoint, self.cache_path, self.max_tokens = endpoint, cache_path, max_tokens
        self.client = None

    def setup(self) -> None:
        from importlib import resources

        from dataflux.llm.client import LLMClient

        self.system = resources.files("dataflux").joinpath("prompts/answerer/v1.system.txt").read_text()
        self.client = LLMClient.open(self.endpoint, self.cache_path)

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close_cache()

    def process_batch(self, items: list[dict]) -> Result:
        from dataflux.llm.client import LLMError, run_all

        requests = [{"messages": answerer_messages(item, self.system), "template_version": ANSWERER_PROMPT_VERSION,
                     "temperature": 0.0, "max_tokens": self.max_tokens} for item in items]
        result = Result()
        for item, reply in zip(items, run_all(self.client, requests)):
            if isinstance(reply, LLMError):
                result.rejects.append(self.reject(item["question_id"], "answer_failed",
                                                  f"{self.name}: {reply.reason}"[:2000], item["clip_id"]))
                continue
            letter, how = extract_letter(reply.text, item["options"])
            reasoning = strip_think(reply.text).strip()
            entry = answer(self.name, "openai", self.endpoint.model, letter, reasoning, reply.text, how)
            result.rows.append(with_answer(item, entry))
        return result
