"""The paralinguistic taxonomy (L0 > L1 > L2 > L3), one declaration per leaf.

Each L0 domain is one module here that declares its leaves (`spec.Leaf`): where the leaf sits, what it
means, which annotation columns ground it and, for leaves the measurements decide, its label set with
the bins that measure it, option texts and synonyms, question phrasings, the judge's rule, the
captioner's phrasings and the analyzer answerer's evidence. The template writer, the label mapping, the
analyzer answerers, the structured captioner and the judge read these, and nothing else says them.

Python rather than YAML because several leaves need a line of logic (pitch relative to gender,
speakers from a count, the sound type from two tags) that a YAML file could only name, with its code
in a second place. A user's taxonomy YAML (`generate.taxonomy`) still loads: a leaf in it takes the
packaged spec of the same name, if there is one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from dataflux.taxonomy import (acoustic_scene, content, delivery, emotion_attitude, environment_quality, music,
                               non_speech_events, speaker_traits)
from dataflux.taxonomy.spec import Binned, Label, Leaf, Levels, level

__all__ = ["LEAVES", "Label", "Leaf", "bin_tags", "domain_rules", "leaf_named", "level", "load_taxonomy"]

LEAVES: tuple[Leaf, ...] = (*speaker_traits.LEAVES, *delivery.LEAVES, *emotion_attitude.LEAVES, *content.LEAVES,
                            *environment_quality.LEAVES, *non_speech_events.LEAVES, *music.LEAVES,
                            *acoustic_scene.LEAVES)
_BY_NAME = {leaf.name: leaf for leaf in LEAVES}

def _content(m: dict, t) -> str:
    return "speech" if m.get("is_speech") else "non_speech"


# Tags every clip gets whatever leaf is asked: the speech gate the speech-only leaves read, and the length.
OTHER_BINS = {"tag_content": Binned(_content, ("speech", "non_speech")),
              "tag_duration": Levels("duration_s", "duration_s", ("short", "medium", "long"))}


def leaf_named(name: str) -> Leaf | None:
    return _BY_NAME.get(name)


def bin_tags(m: dict, t) -> dict:
    """Every tag column from measurements under the annotations' column names; `t` has the fields of
    `annotate.tags.TagThresholds`. The annotate stage tags with this, and the analyzer answerers bin
    their own measurements with it, so both speak one vocabulary."""
    tags = {leaf.tag: leaf.bins(m, t) for leaf in LEAVES if leaf.bins is not None}
    return {**tags, **{tag: bins(m, t) for tag, bins in OTHER_BINS.items()}}


def domain_rules(domain: str) -> str | None:
    """The judge's rules for an L0 domain: its leaves' rules, one per line."""
    lines = [f"- {rule}\n" for leaf in LEAVES if leaf.path[0] == domain for rule in leaf.rules]
    return "".join(lines) or None


def load_taxonomy(path: str | Path | None = None) -> list[Leaf]:
    """The packaged leaves, or a user's YAML tree (`nodes:` L0 > L1 > L2 > L3: {grounded_by, description})."""
    if not path:
        return list(LEAVES)
    leaves = []

    def walk(node: dict, trail: tuple[str, ...]):
        for name, child in node.items():
            here = trail + (name,)
            if len(here) == 4:
                if not isinstance(child, dict) or "description" not in child:
                    raise ValueError(f"taxonomy leaf {' > '.join(here)} needs grounded_by and description")
                fields = dict(path=here, grounded_by=tuple(child.get("grounded_by") or ()),
                              description=child["description"])
                packaged = _BY_NAME.get(name)
                leaves.append(dataclasses.replace(packaged, **fields) if packaged else Leaf(**fields))
            elif isinstance(child, dict):
                walk(child, here)
            else:
                raise ValueError(f"taxonomy node {' > '.join(here)} stops above level L3")

    walk(yaml.safe_load(Path(path).read_text())["nodes"], ())
    return leaves
