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

from dataflux.audio import TARGET_SR, decode_flac, wav_base64
from dataflux.llm.stage import UsesEndpoint
from dataflux.mcq import LETTERS, extract_letter, mcq_prompt, strip_think
from dataflux.stage import Resources, Result, Stage
from dataflux.taxonomy import leaf_named
from verifiers.labels import annotation_view, label_from_tags, option_for, tags_from_measures

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
           raw: str | None = None, how: str | None = None, trace: str | None = None) -> dict:
    """`reasoning`: the reply after any thinking; `trace`: the model's thinking, kept apart (a server's
    `reasoning_content`, or the reply's `<think>` block)."""
    return {"answerer": name, "backend": backend, "model": model, "letter": letter, "reasoning": reasoning,
            "raw": raw, "parse": how, "trace": trace}


def think_trace(text: str, reasoning_content: str | None) -> str | None:
    if reasoning_content:
        return reasoning_content.strip()
    if "</think>" in text:
        return text.rsplit("</think>", 1)[0].split("<think>", 1)[-1].strip()
    return None


class Answerer(Stage):
    version = "1"
    inputs = INPUTS

    def __init__(self, name: str, resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.5, batch_size=16))
        self.name = name


class AnalyzerAnswerer(Answerer):
    """Answers from its own measurements; never sees the annotations, the caption or the key.
    `thresholds`: the config's tag thresholds (`annotate.tags`), so its bins are the annotator's."""

    def __init__(self, name: str, stack: str, thresholds, threads: int = 0, resources: Resources | None = None):
        super().__init__(name, resources)
        self.stack_name, self.thresholds, self.threads = stack, thresholds, threads
        self._measures: OrderedDict[str, dict] = OrderedDict()

    def evidence(self, leaf: str) -> str | None:
        """What this answerer answers `leaf` from; None: it cannot answer it (`verifiers.evidence`)."""
        from verifiers.evidence import ANALYZER_STACKS

        return ANALYZER_STACKS.get(self.stack_name, {}).get(leaf)

    def setup(self) -> None:
        from verifiers.measure import make_stack

        self.stack = make_stack(self.stack_name, self.threads)

    def measures(self, item: dict) -> dict:
        """One measurement per clip (a clip's questions arrive together), kept for the last 64 clips."""
        clip = item["clip_id"]
        if clip not in self._measures:
            samples, sr = decode_flac(item["audio"])
            self._measures[clip] = {"duration_s": len(samples) / (sr or TARGET_SR),
                                    **self.stack.measure(samples.astype(np.float32))}
            if len(self._measures) > 64:
                self._measures.popitem(last=False)
        return self._measures[clip]

    def process_batch(self, items: list[dict]) -> Result:
        rows = []
        for item in items:
            m = self.measures(item)
            leaf = leaf_of(item["node_path"])
            label = label_from_tags(leaf, tags_from_measures(m, self.thresholds))
            index = option_for(leaf, label, item["options"])
            backend, model = "analyzer", f"analyzer:{self.stack_name}"
            if index is None:
                why = "I cannot tell this from what I can hear" if label is None else \
                    f"I hear {label}, but no single option says so"
                entry = answer(self.name, backend, model, None, why)
            else:
                letter = LETTERS[index]
                evidence = leaf_named(leaf).evidence_for(label, annotation_view(m, self.thresholds))
                reasoning = (f"{evidence}. That matches \"{item['options'][index]}\".\n"
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


class OpenAIAnswerer(UsesEndpoint, Answerer):
    """An audio reasoning model (e.g. Qwen3-Omni-Thinking, Step-Audio-R1 behind vLLM)."""

    def __init__(self, name: str, endpoint, cache_path: str | None, max_tokens: int = 2048,
                 resources: Resources | None = None, backend: str = "openai", params: dict | None = None):
        super().__init__(name, resources or Resources(num_cpus=0.1, batch_size=16))
        self.endpoint, self.cache_path, self.max_tokens, self.backend = endpoint, cache_path, max_tokens, backend
        self.params = params or {}  # more sampling parameters for this role (they are part of the cache key)

    def setup(self) -> None:
        from importlib import resources

        self.system = resources.files("dataflux").joinpath("prompts/answerer/v1.system.txt").read_text()
        super().setup()

    def process_batch(self, items: list[dict]) -> Result:
        from dataflux.llm.client import LLMError, run_all

        requests = [{"messages": answerer_messages(item, self.system), "template_version": ANSWERER_PROMPT_VERSION,
                     "temperature": 0.0, "max_tokens": self.max_tokens, **self.params} for item in items]
        result = Result()
        for item, reply in zip(items, run_all(self.client, requests)):
            if isinstance(reply, LLMError):
                result.rejects.append(self.reject(item["question_id"], "answer_failed",
                                                  f"{self.name}: {reply.reason}"[:2000], item["clip_id"]))
                continue
            letter, how = extract_letter(reply.text, item["options"])
            reasoning = strip_think(reply.text).strip()
            entry = answer(self.name, self.backend, self.endpoint.model, letter, reasoning, reply.text, how,
                           think_trace(reply.text, reply.reasoning))
            result.rows.append(with_answer(item, entry))
        return result
