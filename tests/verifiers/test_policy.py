"""The keep/discard policy and the rules judge, as tables."""

import json

import pytest

from verifiers.judges import rules_verdict
from verifiers.policy import Policy


def verdict(consistency="STRONG_MATCH", winner="TIE", action="KEEP_USING_WINNER", consensus=True):
    return {"consensus": consensus, "consistency_with_caption": consistency, "winner": winner, "final_action": action}


@pytest.mark.parametrize("v, letters, policy, expect", [
    (verdict(), ["A", "A"], Policy(), None),
    (verdict("WEAK_MATCH", "MODEL_A", consensus=False), ["A", None], Policy(), None),
    (verdict("WEAK_MATCH", "MODEL_B", consensus=False), ["C", "A"], Policy(), "ambiguous"),
    (verdict("WEAK_MATCH", "MODEL_B", consensus=False), ["C", "A"], Policy(discard_split=False), None),
    (verdict("CONFLICT", "NONE", "DISCARD", True), ["B", "B"], Policy(), "conflict"),
    (verdict("CONFLICT", "MODEL_A", "KEEP_USING_WINNER"), ["B", "B"], Policy(), "conflict"),
    (verdict("WEAK_MATCH", "NONE", "DISCARD", False), [None, None], Policy(), "unverified"),
    (verdict("WEAK_MATCH", "NONE", "DISCARD", False), ["A", "B"], Policy(), "no_winner"),
    (verdict("STRONG_MATCH", "TIE", "DISCARD"), ["A", "A"], Policy(), "judge_discard"),
    (verdict("STRONG_MATCH", "TIE", "DISCARD"), ["A", "A"], Policy(obey_judge_discard=False), None),
    (verdict("WEAK_MATCH", "MODEL_A", consensus=False), ["A", None], Policy(keep_consistency=("STRONG_MATCH",)),
     "weak_match"),
    (verdict("WEAK_MATCH", "MODEL_A", consensus=False), ["A", None], Policy(require_consensus=True), "no_consensus"),
])
def test_policy_table(v, letters, policy, expect):
    assert policy.decide(v, letters) == expect


def item(key, a, b, node="speaker_traits > gender > perceived_gender > speaker_gender", annotation=None):
    answers = [{"letter": a, "reasoning": ""}, {"letter": b, "reasoning": ""}]
    return {"answer_key": key, "answers": json.dumps(answers), "node_path": node,
            "options": ["A man's voice", "A woman's voice", "A young child's voice", "No voice can be heard"],
            "annotation": json.dumps(annotation or {})}


@pytest.mark.parametrize("it, consensus, consistency, winner, action", [
    (item("A", "A", "A"), True, "STRONG_MATCH", "TIE", "KEEP_USING_WINNER"),
    (item("A", "A", None), False, "WEAK_MATCH", "MODEL_A", "KEEP_USING_WINNER"),
    (item("A", "B", "A"), False, "WEAK_MATCH", "MODEL_B", "KEEP_USING_WINNER"),
    (item("A", "B", "B"), True, "CONFLICT", "NONE", "DISCARD"),
    (item("A", None, None), False, "WEAK_MATCH", "NONE", "DISCARD"),
    # no key: the measured tags give the truth
    (item(None, "B", "B", annotation={"tag_content": "speech", "gender": "female"}), True, "STRONG_MATCH", "TIE",
     "KEEP_USING_WINNER"),
    (item(None, "A", "A", annotation={"tag_content": "speech", "gender": "female"}), True, "CONFLICT", "NONE",
     "DISCARD"),
    # a key the measured tags contradict (a wrong key) is a conflict even when an answerer agrees with it
    (item("A", "A", None, annotation={"tag_content": "speech", "gender": "female"}), False, "CONFLICT", "NONE",
     "DISCARD"),
    (item("B", "B", None, annotation={"tag_content": "speech", "gender": "female"}), False, "WEAK_MATCH", "MODEL_A",
     "KEEP_USING_WINNER"),
    # a node the tags do not ground: agreement alone
    (item(None, "C", "C", node="emotion_attitude > emotion > basic_emotion > emotion_category"), True, "WEAK_MATCH",
     "TIE", "KEEP_USING_WINNER"),
    (item(None, "C", "D", node="emotion_attitude > emotion > basic_emotion > emotion_category"), False, "CONFLICT",
     "NONE", "DISCARD"),
])
def test_rules_judge_table(it, consensus, consistency, winner, action):
    v = rules_verdict(it)
    assert (v.consensus, v.consistency_with_caption, v.winner, v.final_action) == (consensus, consistency, winner,
                                                                                    action)
