"""Every taxonomy leaf spec is complete and consistent: what the template writer, the label mapping, the
answerers, the captioner and the judge read from it must fit together."""

import numpy as np
import pytest

from dataflux.annotate.tags import TagThresholds
from dataflux.generate.template import label_problem, template_answer
from dataflux.taxonomy import LEAVES, OTHER_BINS, bin_tags, domain_rules, load_taxonomy
from dataflux.taxonomy.spec import Above, Binned, Levels
from storage.schemas import ANNOTATIONS

T = TagThresholds()
DECIDED = [leaf for leaf in LEAVES if leaf.labels]  # leaves the measurements can decide
BINS = {**{leaf.tag: leaf.bins for leaf in LEAVES if leaf.bins is not None}, **OTHER_BINS}


def ids(leaves):
    return [leaf.name for leaf in leaves]


def test_leaf_names_and_paths_are_unique_and_four_levels_deep():
    assert len({leaf.name for leaf in LEAVES}) == len(LEAVES)
    assert all(len(leaf.path) == 4 and all(leaf.path) and leaf.description for leaf in LEAVES)


@pytest.mark.parametrize("leaf", LEAVES, ids=ids(LEAVES))
def test_grounding_columns_exist_in_the_annotations_schema(leaf):
    columns = set(ANNOTATIONS.names)
    assert set(leaf.grounded_by) <= columns
    if leaf.tag:
        assert leaf.tag in columns


@pytest.mark.parametrize("leaf", DECIDED, ids=ids(DECIDED))
def test_a_decided_leaf_has_options_synonyms_questions_a_rule_and_a_source(leaf):
    assert leaf.grounded_by, "a leaf with labels must say which columns ground it"
    assert leaf.tag or leaf.derive, "a leaf with labels must say where its label comes from"
    assert len(leaf.questions) >= 1 and all(q.strip().endswith("?") for q in leaf.questions)
    assert leaf.rules, "the judge needs the leaf's rule"
    options = [label.option for label in leaf.labels.values()] + list(leaf.distractors)
    assert len({o.lower() for o in options}) == len(options), "options must be distinct"
    assert len(options) >= 4 and (leaf.max_distractors is None or leaf.max_distractors >= 3)
    for name, label in leaf.labels.items():
        if label.says:  # a label without synonyms is a distractor only (no measurement gives it)
            assert leaf.says(name, label.option), f"{name}'s own option must say it"
            assert leaf.option_for(name, options) == options.index(label.option), f"{name} must be said once"
        assert not any(leaf.says(name, d) for d in leaf.distractors), f"a never-right option says {name}"


@pytest.mark.parametrize("tag", sorted(BINS))
def test_bins_cover_their_range_without_gaps_or_overlaps(tag):
    bins = BINS[tag]
    if isinstance(bins, Levels):
        low, high = bins.bounds(T)
        assert low <= high, f"{tag}: thresholds out of order"
        values = np.linspace(low - 3 * (high - low + 1), high + 3 * (high - low + 1), 2001)
        got = [bins({bins.measure: float(v)}, T) for v in values]
        assert all(g in bins.names for g in got), "every value falls in a bin"
        order = [bins.names.index(g) for g in got]
        assert order == sorted(order) and set(order) == {0, 1, 2}, "bins are contiguous and in order"
        assert bins({bins.measure: None}, T) is None and bins({bins.measure: float("nan")}, T) is None
    elif isinstance(bins, Above):
        edge = getattr(T, bins.threshold)
        assert [bins({bins.measure: v}, T) for v in (edge - 1e-9, edge, edge + 1e-9)] == \
            [bins.names[0], bins.names[0], bins.names[1]]
    else:
        assert isinstance(bins, Binned) and bins.names


@pytest.mark.parametrize("leaf", [leaf for leaf in DECIDED if leaf.derive is None and leaf.tag in BINS],
                         ids=ids([leaf for leaf in DECIDED if leaf.derive is None and leaf.tag in BINS]))
def test_every_bin_of_a_leaf_tag_is_one_of_its_labels(leaf):
    assert set(BINS[leaf.tag].names) <= set(leaf.labels)


def test_bin_tags_gives_every_tag_column_of_the_schema():
    tag_columns = {name for name in ANNOTATIONS.names if name.startswith("tag_")}
    assert set(bin_tags({}, T)) == tag_columns


@pytest.mark.parametrize("leaf", DECIDED, ids=ids(DECIDED))
def test_labels_map_both_ways_through_the_template(leaf):
    """For each label the tags can give: the template's right option is the one the mapping picks back."""
    for name, label in leaf.labels.items():
        if not label.says:
            continue
        beyond = leaf.path[0] in ("music", "non_speech_events")
        a = {"tag_content": "non_speech" if beyond else "speech", "tag_sound": "music", "language_prob": 0.99,
             leaf.tag: name}
        if leaf.derive is not None:
            continue  # derived labels are checked by their own leaves' tests
        correct, labels, never_right = template_answer(leaf, a)
        assert correct == label.option and leaf.label_of(a) == name
        options = [correct] + (labels + never_right)[:3]
        assert leaf.option_for(name, options) == 0
        assert label_problem(leaf, name, options) is None
        assert leaf.evidence_for(name, {})  # never fails, whatever is missing


def test_each_domain_has_judge_rules_and_an_unknown_one_has_none():
    for domain in {leaf.path[0] for leaf in LEAVES}:
        assert domain_rules(domain).startswith("- ")
    assert domain_rules("no_such_domain") is None


def test_a_user_taxonomy_keeps_the_packaged_spec_by_name(tmp_path):
    path = tmp_path / "tax.yaml"
    path.write_text("nodes:\n  mine:\n    a:\n      b:\n        loudness_level: {grounded_by: [tag_loudness], "
                    "description: how loud}\n        my_leaf: {grounded_by: [], description: mine}\n")
    loud, mine = load_taxonomy(path)
    assert loud.node_path == "mine > a > b > loudness_level" and loud.description == "how loud"
    assert loud.labels and loud.questions and not mine.labels
    assert template_answer(mine, {"tag_content": "speech"}) is None
