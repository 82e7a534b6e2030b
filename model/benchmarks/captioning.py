"""Dense captioning scored as the paper scores it: the model describes each MMAU/MMAR clip, and a text LLM
(any OpenAI-compatible endpoint of the request layer) answers the benchmark's question from that caption
alone; the answers are scored like any multiple-choice answer (our extraction and the official string
match), so the accuracy says how much of what the question needs the caption carried.

The paper does not publish its answering prompt; the one below is ours (it asks for the option text, which
both scoring rules read)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from model.data import Sample

CAPTION_SYSTEM = ("You are an expert audio describer. Give a comprehensive description of the input audio, covering "
                  "all details: sound events, speech and speakers, music, environment, and paralinguistic cues.")
CAPTION_PROMPT = "Describe the audio in detail."
ANSWER_SYSTEM = ("You answer a multiple-choice question about an audio clip you cannot hear, using only a detailed "
                 "description of it. Reply with the text of the one option that fits best, exactly as written.")
TEMPLATE_VERSION = "caption-qa-v1"


def caption_samples(samples: list[Sample]) -> list[Sample]:
    """The same clips with the captioning prompt; the question stays in the reference for the answerer."""
    return [replace(s, prompt=CAPTION_PROMPT, system=CAPTION_SYSTEM, task="caption",
                    reference={**s.reference, "question_prompt": s.prompt}) for s in samples]


def answer_messages(caption: str, question_prompt: str) -> list[dict]:
    return [{"role": "system", "content": ANSWER_SYSTEM},
            {"role": "user", "content": f"Audio description:\n{caption.strip() or '(empty)'}\n\n{question_prompt}"}]


def answer_from_captions(captions: Path, answers: Path, endpoint, cache_path: str | None = None) -> int:
    """Writes `answers` (predictions in the multiple-choice form) for the captions not yet answered; returns
    how many were asked. A request that fails for good is recorded as an empty (unparsed, wrong) answer."""
    from dataflux.llm.client import LLMError
    from model.benchmarks.common import ask_llm, jsonl

    def record(r: dict, reply) -> dict:
        failed = isinstance(reply, LLMError)
        return {**{k: v for k, v in r.items() if k not in ("prediction", "question_prompt")}, "task": "mcq",
                "caption": r["prediction"], "prediction": "" if failed else reply.text,
                "answer_error": str(reply) if failed else None}

    return ask_llm(jsonl(captions), answers, endpoint, cache_path,
                   lambda r: {"messages": answer_messages(r["prediction"], r["question_prompt"]),
                              "template_version": TEMPLATE_VERSION, "temperature": 0.0, "max_tokens": 96}, record)
