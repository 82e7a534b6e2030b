"""The `template` question writer's content: deterministic questions built from measured tags, with
plausible distractors, all read from the taxonomy's leaf specs. Its answer key is known and kept in a
separate column that answerers never see."""

from __future__ import annotations

from dataflux.taxonomy import Leaf

TEMPLATE_VERSION = "template-v3"  # v3: phrasings no longer echo an option (verifiers.blind)


def template_answer(leaf: Leaf, a: dict) -> tuple[str, list[str], list[str]] | None:
    """The option that says the annotation's label, the leaf's other labels' options (the distractors
    drawn first, capped at `max_distractors`) and its never-right options (to fill up to three); None when
    the tags do not ground the leaf."""
    label = leaf.label_of(a)
    if label not in leaf.labels or not leaf.questions or (leaf.ask is not None and not leaf.ask(a)):
        return None
    labels = [spec.option for name, spec in leaf.labels.items() if name != label]
    return leaf.labels[label].option, labels[:leaf.max_distractors] if leaf.max_distractors else labels, \
        list(leaf.distractors)


def pick_distractors(rng, labels: list[str], never_right: list[str], n: int = 3) -> list[str]:
    """`n` wrong options: the leaf's other labels first (sampled when there are more), then never-right
    options, so a blind reader cannot strike the fillers out and be left with the key."""
    chosen = rng.sample(labels, min(n, len(labels)))
    return chosen + rng.sample(never_right, n - len(chosen))


def label_problem(leaf: Leaf, label: str, options: list[str]) -> str | None:
    """Options must be distinct under the label mapping: the key's option is the one option that says
    the key's label, and no option says two labels or a label another option says too."""
    said = [[name for name in leaf.labels if leaf.says(name, o)] for o in options]
    if leaf.option_for(label, options) is None or label not in said[options.index(leaf.labels[label].option)]:
        return f"the key's label {label!r} is not said by exactly one option"
    flat = [name for names in said for name in names]
    if any(len(names) > 1 for names in said) or len(flat) != len(set(flat)):
        return f"options are not distinct under the label mapping: {said}"
    return None
