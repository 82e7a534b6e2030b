"""Versioned prompt templates for the question writer (files under dataflux/prompts/), rendered with
the clip's caption, transcript and tags inside a delimited data block (`dataflux.clip_data`)."""

from __future__ import annotations

import json
from importlib import resources

from dataflux.clip_data import data_block
from dataflux.taxonomy import Leaf

PROMPT_VERSION = "question-writer-v1"


def _read(name: str) -> str:
    return resources.files("dataflux").joinpath(f"prompts/question_writer/{name}").read_text()


def writer_messages(annotation: dict, leaf: Leaf, n: int, feedback: str | None = None) -> list[dict]:
    examples = "\n".join(
        json.dumps({k: v for k, v in json.loads(line).items() if k != "node"})
        for line in _read("v1.examples.jsonl").splitlines() if line.strip())
    user = _read("v1.user.txt").format(node_path=leaf.node_path, node_description=leaf.description,
                                       examples=examples, clip_data=data_block(annotation), n=n,
                                       node_name=leaf.name)
    if feedback:
        user += f"\n\nA reviewer rejected earlier questions for this clip and node: {feedback}"
    return [{"role": "system", "content": _read("v1.system.txt").replace("{n}", str(n))},
            {"role": "user", "content": user}]
