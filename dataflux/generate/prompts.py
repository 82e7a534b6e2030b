"""Versioned prompt templates for the question writer (files under dataflux/prompts/), rendered with
the clip's caption, transcript and tags inside a delimited data block."""

from __future__ import annotations

import json
from importlib import resources

from dataflux.taxonomy import Leaf

PROMPT_VERSION = "question-writer-v1"
DATA_OPEN, DATA_CLOSE = "<<<CLIP_DATA", "CLIP_DATA>>>"
TAG_COLUMNS = ("gender", "tag_pitch", "tag_rate", "tag_loudness", "tag_quality", "tag_clipping", "tag_content",
               "tag_timbre", "tag_speakers", "language", "duration_s")


def _read(name: str) -> str:
    return resources.files("dataflux").joinpath(f"prompts/question_writer/{name}").read_text()


def data_block(annotation: dict) -> str:
    """The clip's data, with any delimiter inside it defused so the data cannot close its own block."""
    tags = {k: annotation.get(k) for k in TAG_COLUMNS if annotation.get(k) is not None}
    body = "\n".join([f"caption: {annotation.get('caption') or ''}",
                      f"transcript: {annotation.get('transcript') or '(no speech)'}",
                      f"measured tags: {json.dumps(tags, sort_keys=True)}"])
    for marker in (DATA_OPEN, DATA_CLOSE, "CLIP_DATA"):
        body = body.replace(marker, marker.replace("CLIP_DATA", "CLIP DATA"))
    return body


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
