"""What a taxonomy leaf declares, and the bins its tags are measured into.

A bin reads measurements under the annotations table's column names and a thresholds object with the
fields of `annotate.tags.TagThresholds` (the config's `annotate.tags`), passed in by the caller: this
module is core and imports no stage package.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

_NEGATED = re.compile(r"\b(without|not|nobody|no one|never|no)\b[^,.;:]*", re.I)


def level(value: float | None, bounds: tuple[float, float], names=("low", "medium", "high")) -> str | None:
    """Below the first bound, between the two (inclusive), above the second; None for a missing value."""
    if value is None or not math.isfinite(value):
        return None
    return names[0] if value < bounds[0] else names[2] if value > bounds[1] else names[1]


@dataclass(frozen=True)
class Levels:
    """Three bins of one measurement, split at a (low, high) pair of thresholds: either one threshold
    field holding the pair, or two fields."""
    measure: str
    thresholds: str | tuple[str, str]
    names: tuple[str, str, str] = ("low", "medium", "high")

    def bounds(self, t) -> tuple[float, float]:
        if isinstance(self.thresholds, str):
            return tuple(getattr(t, self.thresholds))
        return getattr(t, self.thresholds[0]), getattr(t, self.thresholds[1])

    def __call__(self, m: dict, t) -> str | None:
        return level(m.get(self.measure), self.bounds(t), self.names)


@dataclass(frozen=True)
class Above:
    """Two bins of one measurement: the second name above the threshold field's value."""
    measure: str
    threshold: str
    names: tuple[str, str]

    def __call__(self, m: dict, t) -> str | None:
        value = m.get(self.measure)
        return None if value is None else self.names[1] if value > getattr(t, self.threshold) else self.names[0]


@dataclass(frozen=True)
class Binned:
    """A bin that needs more than one measurement, written as a function of (measurements, thresholds)."""
    fn: Callable[[dict, object], str | None]
    names: tuple[str, ...]

    def __call__(self, m: dict, t) -> str | None:
        return self.fn(m, t)


Bin = Levels | Above | Binned


@dataclass(frozen=True)
class Label:
    option: str  # how the template writer says it
    says: tuple[str, ...] = ()  # regexes: an option says this label when one matches
    evidence: str | None = None  # the analyzer answerer's reasoning for this label (else the leaf's)


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, str, str, str]  # L0, L1, L2, L3
    description: str  # what the node means, for the LLM question writer
    grounded_by: tuple[str, ...] = ()  # annotation columns that must be measured to ask about it
    tag: str | None = None  # the annotation column whose value is the label
    bins: Bin | None = None  # how `tag` is binned from measurements, when this leaf owns that tag
    speech_only: bool = False  # the label exists only when someone speaks
    derive: Callable[[dict], str | None] | None = None  # the label, when one column does not give it
    ask: Callable[[dict], bool] | None = None  # the template writer asks only when this holds as well
    labels: dict[str, Label] = field(default_factory=dict)
    distractors: tuple[str, ...] = ()  # options that are never right
    max_distractors: int | None = None  # the first N wrong options only (most plausible first)
    questions: tuple[str, ...] = ()  # template phrasings, as a listener would ask
    yes_no: bool = False  # options start with yes/no: that is the answer, not a negation to cut
    rules: tuple[str, ...] = ()  # the judge's domain rules this leaf adds
    evidence: tuple[str, ...] = ()  # answerer reasoning: the first whose measurements are all present
    caption: dict[str, tuple[str, ...]] = field(default_factory=dict)  # captioner phrasings by tag value

    @property
    def node_path(self) -> str:
        return " > ".join(self.path)

    @property
    def name(self) -> str:
        return self.path[-1]

    def label_of(self, a: dict) -> str | None:
        """The label an annotation-like dict of tags supports (None: it does not decide it)."""
        if self.speech_only and a.get("tag_content") != "speech":
            return None
        if self.derive is not None:
            return self.derive(a)
        return a.get(self.tag) if self.tag else None

    def says(self, label: str, option: str) -> bool:
        label_spec = self.labels.get(label)
        if label_spec is None:
            return False
        text = option.strip().lower()
        if not self.yes_no:
            text = _NEGATED.sub(" ", text)
        return any(re.search(p, text) for p in label_spec.says)

    def option_for(self, label: str | None, options: list[str]) -> int | None:
        """The index of the one option that says `label`; None when none or several do."""
        if label is None:
            return None
        hits = [i for i, option in enumerate(options) if self.says(label, option)]
        return hits[0] if len(hits) == 1 else None

    def evidence_for(self, label: str, measures: dict) -> str:
        """Reasoning from measurements (annotation column names): the label's own text, else the first
        of the leaf's texts whose measurements are all present."""
        values = {k: v for k, v in measures.items() if v is not None}
        own = self.labels.get(label)
        for text in ((own.evidence,) if own and own.evidence else ()) + self.evidence:
            try:
                return text.format(label=label, **values)
            except KeyError:
                continue
        return f"What I hear points to {label}"


def leaf(node_path: str, description: str, grounded_by=(), **spec) -> Leaf:
    path = tuple(node_path.split(" > "))
    if len(path) != 4:
        raise ValueError(f"taxonomy leaf {node_path} is not at level L3")
    return Leaf(path, description, tuple(grounded_by), **spec)

