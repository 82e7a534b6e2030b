"""The `template` question writer's content: deterministic questions built from measured tags, with
plausible distractors, all read from the taxonomy's leaf specs. Its answer key is known and kept in a
separate column that answerers never see."""

from __future__ import annotations

from dataflux.taxonomy import Leaf

TEMPLATE_VERSION = "template-v2"


def template_answer(leaf: Leaf, a: dict) -> tuple[str, list[str]] | None:
    """The option that says the annotation's label, and the wrong options to draw 3 distractors from
    (the leaf's other labels, then its never-right options); None when the tags do not ground the leaf."""
    label = leaf.label_of(a)
    if label not in leaf.labels or not leaf.questions or (leaf.ask is not None and not leaf.ask(a)):
        return None
    wrong = [spec.option for name, spec in leaf.labels.items() if name != label] + list(leaf.distractors)
    return leaf.labels[label].option, wrong[:leaf.max_distractors] if leaf.max_distractors else wrong
