"""The recording-length leaf, grounded by the measured `duration_s` (binned into `tag_duration`): the
template writer asks it with the right key, an analyzer answerer picks that key from the audio, and
labels map to options and back."""

import numpy as np
import pytest

from dataflux.annotate.tags import TagThresholds, Tagger
from dataflux.audio import TARGET_SR, encode_flac, to_pcm16
from dataflux.generate.writers import TemplateWriter
from dataflux.taxonomy import leaf_named, load_taxonomy
from verifiers.answerers import AnalyzerAnswerer, answers_of
from verifiers.labels import label_from_tags, option_for

LEAF = next(leaf for leaf in load_taxonomy() if leaf.name == "recording_length")


def annotation(seconds: float) -> dict:
    a = {"clip_id": f"clp_{seconds}", "duration_s": seconds, "is_speech": False, "spectral_flatness": 0.01}
    return {**a, **Tagger(TagThresholds()).analyze(None, a)}


@pytest.mark.parametrize("seconds, label", [(1.5, "short"), (3.0, "medium"), (9.9, "medium"), (12.0, "long")])
def test_the_template_asks_with_the_key_on_the_measured_length(seconds, label):
    a = annotation(seconds)
    assert a["tag_duration"] == label and label_from_tags("recording_length", a) == label
    row, = TemplateWriter().process_batch([{"clip_id": a["clip_id"], "leaf": LEAF, "annotation": a,
                                            "round": 0}]).rows
    key_text = row["options"]["ABCD".index(row["answer_key"])]
    assert key_text == LEAF.labels[label].option and row["question"] in LEAF.questions
    assert option_for("recording_length", label, row["options"]) == "ABCD".index(row["answer_key"])


def test_labels_map_to_one_option_and_back():
    options = [spec.option for spec in LEAF.labels.values()] + list(LEAF.distractors)
    for label in LEAF.labels:
        index = option_for("recording_length", label, options)
        assert index is not None and [n for n in LEAF.labels if LEAF.says(n, options[index])] == [label]
    assert option_for("recording_length", None, options) is None


@pytest.mark.parametrize("seconds, label", [(1.5, "short"), (12.0, "long")])
def test_an_analyzer_answerer_picks_the_key_from_the_audio(seconds, label):
    t = np.arange(int(seconds * TARGET_SR)) / TARGET_SR
    audio = encode_flac(to_pcm16((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)))
    options = ["Several minutes", LEAF.labels["medium"].option, LEAF.labels["long"].option,
               LEAF.labels["short"].option]
    stage = AnalyzerAnswerer("listener", "signal", TagThresholds())
    stage.setup()
    row, = stage.process_batch([{"question_id": "q", "clip_id": "c", "node_path": LEAF.node_path,
                                 "question": LEAF.questions[0], "options": options, "audio": audio,
                                 "answers": "[]", "round": 0}]).rows
    entry, = answers_of(row)
    assert entry["letter"] == "ABCD"[options.index(LEAF.labels[label].option)]
    assert f"{seconds:.1f} seconds" in entry["reasoning"]
    assert leaf_named("recording_length").rules  # the judge has a rule for it
