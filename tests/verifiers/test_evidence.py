"""Independent evidence per leaf: an item whose key rests on the annotator and one listener that cannot be
contradicted (the only competent one) or measures like the annotator is `single_source`, never a plain
verified fact."""

import json
from collections import Counter

import numpy as np
import pytest

from dataflux.annotate.speaker import Speakers
from dataflux.annotate.tags import TagThresholds
from dataflux.audio import decode, encode_flac, to_mono_16k, to_pcm16
from dataflux.generate.writers import TemplateWriter
from dataflux.stages.filter import FilterConfig, decide
from dataflux.taxonomy import LEAVES, leaf_named
from tests.conftest import DEMO_AUDIO
from verifiers.answerers import AnalyzerAnswerer, answers_of
from verifiers.evidence import ANALYZER_STACKS, ANNOTATOR, single_source
from verifiers.filters import Balancer, Deduplicator
from verifiers.judges import RulesJudge
from verifiers.policy import Policy

SPEAKERS = "number_of_speakers"


def entry(stack: str, letter: str | None) -> dict:
    return {"answerer": stack, "backend": "analyzer", "model": f"analyzer:{stack}", "letter": letter}


def test_every_measured_leaf_declares_the_annotators_method_and_the_stacks_name_real_leaves():
    measured = {leaf.name for leaf in LEAVES if leaf.labels and leaf.grounded_by}
    assert measured <= set(ANNOTATOR)
    for stack in ANALYZER_STACKS.values():
        assert set(stack) <= measured


@pytest.mark.parametrize("answers, leaf, single", [
    ([entry("whisper", None), entry("signal", "A")], SPEAKERS, True),  # the only competent listener
    ([entry("whisper", "A"), entry("signal", "A")], "speaker_gender", False),  # two confirmations
    ([entry("whisper", None), entry("signal", "A")], "speaker_gender", False),  # independent, another competent
    ([entry("whisper", "A"), entry("signal", None)], "loudness_level", True),  # measures like the annotator
    ([entry("whisper", None), entry("signal", None)], "speaker_gender", True),  # nobody confirms
    ([entry("signal", "A"), {"backend": "openai", "model": "omni", "letter": "A"}], SPEAKERS, False),
])
def test_single_source_rules(answers, leaf, single):
    assert single_source(answers, leaf, "A") is single


@pytest.mark.slow
def test_two_similar_voices_counted_as_one_are_not_published_as_a_plain_verified_fact():
    """espeak's English and German male voices, one after the other: two voices, alike enough that the
    annotator's speaker embeddings and the signal listener's pitch clusters both hear one speaker, while
    the Whisper listener cannot count speakers. The rules judge sees a WEAK_MATCH, which the old policy
    kept plain; now it is flagged single_source (or discarded)."""
    parts = [to_mono_16k(decode((DEMO_AUDIO / name).read_bytes())).astype(np.float32)
             for name in ("005_en_male_medium_normal.m4a", "030_de_male.m4a")]
    audio = np.concatenate([parts[0], np.zeros(4000, np.float32), parts[1]])
    annotator = Speakers()
    annotator.setup()
    assert annotator.analyze(audio, {})["num_speakers"] == 1  # wrong: there are two voices
    annotation = {"clip_id": "c_two", "tag_content": "speech", "num_speakers": 1, "tag_speakers": "single"}
    leaf = leaf_named(SPEAKERS)
    question = TemplateWriter().process_batch([{"clip_id": "c_two", "leaf": leaf, "annotation": annotation,
                                                "round": 0}]).rows[0]
    assert question["options"]["ABCD".index(question["answer_key"])] == "One person"
    item = {**question, "audio": encode_flac(to_pcm16(audio)), "answers": "[]", "annotation": json.dumps(annotation)}
    for stack in ("whisper", "signal"):
        answerer = AnalyzerAnswerer(stack, stack, TagThresholds())
        answerer.setup()
        item = answerer.process_batch([item]).rows[0]
    letters = [a["letter"] for a in answers_of(item)]
    assert letters == [None, question["answer_key"]]  # whisper abstains, the pitch clusters agree (wrongly)
    judged = RulesJudge().process_batch([item]).rows[0]
    verdict = json.loads(judged["verdict"])
    assert verdict["consistency_with_caption"] == "WEAK_MATCH" and verdict["winner"] == "MODEL_B"
    v = {**verdict, "question_id": question["question_id"], "clip_id": "c_two", "answers": answers_of(item),
         "judge_backend": "rules", "judge_model": None, "judge_prompt_version": "rules", "blind": None}

    def filtered(policy: Policy):
        return decide(v, question, FilterConfig(policy=policy), Deduplicator(), Counter(), Balancer(), {})

    row, why = filtered(Policy(single_source="keep"))
    assert why is None and row["single_source"] is None  # the old behaviour: published as plain fact
    row, why = filtered(Policy())
    assert why is None and row["single_source"] is True  # flagged
    row, why = filtered(Policy(single_source="discard"))
    assert row is None and why[0] == "single_source"
