"""The clip's data as an LLM reads it (question writer and judge): caption, transcript and measured tags
inside a delimited block, so that words in a transcript or caption stay data and cannot pose as
instructions or close the block."""

from __future__ import annotations

import json

DATA_OPEN, DATA_CLOSE = "<<<CLIP_DATA", "CLIP_DATA>>>"
TAG_COLUMNS = ("gender", "tag_pitch", "tag_rate", "tag_loudness", "tag_quality", "tag_clipping", "tag_content",
               "tag_timbre", "tag_speakers", "language", "duration_s")


def data_block(annotation: dict) -> str:
    """The clip's data, with any delimiter inside it defused so the data cannot close its own block."""
    tags = {k: annotation.get(k) for k in TAG_COLUMNS if annotation.get(k) is not None}
    body = "\n".join([f"caption: {annotation.get('caption') or ''}",
                      f"transcript: {annotation.get('transcript') or '(no speech)'}",
                      f"measured tags: {json.dumps(tags, sort_keys=True)}"])
    for marker in (DATA_OPEN, DATA_CLOSE, "CLIP_DATA"):
        body = body.replace(marker, marker.replace("CLIP_DATA", "CLIP DATA"))
    return body
