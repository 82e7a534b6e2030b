"""The blind (text-only) answerer: a leaky question is caught, the template writer's own questions are not
answerable from the text, the policy flags / down-weights / discards, and the data card counts the rate."""

import json
from collections import Counter

import pytest

from dataflux.mcq import LETTERS
from dataflux.report import text_answerable_rates
from dataflux.stages.filter import FilterConfig, decide
from dataflux.taxonomy import LEAVES
from verifiers.blind import BlindAnswerer, BlindConfig, is_text_answerable, option_orders, rule_pick
from verifiers.filters import Balancer, Deduplicator
from verifiers.policy import Policy

GENDER = "speaker_traits > gender > perceived_gender > speaker_gender"
LEAKY = {"question_id": "q_leaky", "node_path": GENDER, "question": "Which option is correct: the man's voice?",
         "options": ["A woman's voice", "A man's voice", "A young child's voice", "No voice can be heard"]}
FAIR = {**LEAKY, "question_id": "q_fair", "question": "What kind of voice do you hear?"}


def blind_of(item: dict, config: BlindConfig = BlindConfig()) -> str:
    return BlindAnswerer(config).process_batch([item]).rows[0]["blind"]


def test_a_leaky_question_is_caught_and_a_fair_one_is_not():
    leaky, fair = blind_of(LEAKY), blind_of(FAIR)
    assert json.loads(leaky)["picks"] == [1, 1, 1, 1]  # "A man's voice" under all 4 orders
    assert is_text_answerable(leaky, 1, 3) is True
    assert is_text_answerable(fair, 1, 3) is False
    assert is_text_answerable(leaky, 0, 3) is False  # had the key been "A woman's voice", the text would mislead


def test_option_orders_put_every_option_in_every_position():
    orders = option_orders("q_1", 4, 4)
    assert orders == option_orders("q_1", 4, 4)
    for position in range(4):
        assert sorted(order[position] for order in orders) == [0, 1, 2, 3]


def test_striking_the_never_right_distractors_leaves_a_blind_reader_one_option():
    leaf = next(x for x in LEAVES if x.name == "speaking_rate_level")
    options = ["Quickly", *leaf.distractors, "Completely silent", "Muffled, as if through a wall"]
    assert rule_pick("How would you describe it?", options, leaf.node_path) is None  # not the leaf's distractors
    options = ["Quickly", leaf.distractors[0]]
    assert rule_pick("How would you describe it?", options, leaf.node_path) == 0


@pytest.mark.parametrize("leaf", [x for x in LEAVES if x.questions and x.labels], ids=lambda x: x.name)
def test_no_template_question_gives_its_key_away(leaf):
    """Every phrasing of every leaf, every label as the key, with the template's own wrong options."""
    for label, spec in leaf.labels.items():
        wrong = [s.option for n, s in leaf.labels.items() if n != label] + list(leaf.distractors)
        wrong = wrong[:leaf.max_distractors] if leaf.max_distractors else wrong
        options = [spec.option] + wrong[:3]
        for question in leaf.questions:
            assert rule_pick(question, options, leaf.node_path) is None, (question, options)


def item_and_verdict(blind: str, key: str = "B"):
    options = LEAKY["options"]
    q = {**LEAKY, "clip_id": "c1", "round": 0, "writer_backend": "template", "writer_model": None,
         "prompt_version": "template-v3", "answer_key": key}
    answer = {"answerer": "listener_a", "backend": "analyzer", "model": "m", "letter": key,
              "reasoning": f"The pitch is low.\nAnswer: {key}", "trace": None}
    v = {"question_id": q["question_id"], "clip_id": "c1", "answers": [answer, {**answer, "answerer": "listener_b"}],
         "consensus": True, "consistency_with_caption": "STRONG_MATCH", "winner": "TIE",
         "final_action": "KEEP_USING_WINNER", "judge_backend": "rules", "judge_model": None,
         "judge_prompt_version": "rules-v1", "blind": blind}
    assert options[LETTERS.index(key)] == "A man's voice"
    return q, v


@pytest.mark.parametrize("action, kept, weight", [("flag", True, 1.0), ("down_weight", True, 0.25),
                                                  ("discard", False, None)])
def test_the_policy_decides_what_a_text_answerable_item_becomes(action, kept, weight):
    q, v = item_and_verdict(blind_of(LEAKY))
    config = FilterConfig(policy=Policy(text_answerable=action))
    row, why = decide(v, q, config, Deduplicator(), Counter(), Balancer(), {})
    if kept:
        assert why is None and row["text_answerable"] is True and row["weight"] == weight
    else:
        assert row is None and why[0] == "text_answerable"
    q, v = item_and_verdict(blind_of(FAIR))
    row, why = decide(v, q, config, Deduplicator(), Counter(), Balancer(), {})
    assert why is None and row["text_answerable"] is False and row["weight"] == 1.0


def test_the_data_card_rate_per_node_and_writer():
    q1, v1 = item_and_verdict(blind_of(LEAKY))
    q2, v2 = item_and_verdict(blind_of(FAIR))
    q2 = {**q2, "question_id": "q_fair", "writer_backend": "local", "writer_model": "smollm2", "answer_key": None}
    v2 = {**v2, "question_id": "q_fair"}  # no key: the judge's winner (MODEL_A's "B") is the key
    rates = text_answerable_rates([q1, q2], [v1, v2], 3)
    assert (rates["text_answerable"], rates["checked"], rates["rate"]) == (1, 2, 0.5)
    assert rates["per_node"][GENDER]["rate"] == 0.5
    assert rates["per_writer"]["template:-"]["rate"] == 1.0 and rates["per_writer"]["local:smollm2"]["rate"] == 0.0


def test_the_embedded_smollm2_as_a_blind_answerer(llm_server):
    from dataflux.llm.client import Endpoint
    from dataflux.llm.server import MODEL_ALIAS

    endpoint = Endpoint(base_url=llm_server.base_url, model=MODEL_ALIAS, flavor="llama.cpp", max_retries=2)
    stage = BlindAnswerer(BlindConfig(backend="local", max_tokens=32), endpoint, None)
    stage.setup()
    try:
        blind = json.loads(stage.process_batch([LEAKY]).rows[0]["blind"])
    finally:
        stage.teardown()
    assert (blind["backend"], blind["model"]) == ("local", MODEL_ALIAS)
    assert len(blind["picks"]) == 4 and all(p is None or p in range(4) for p in blind["picks"])
    # the picks are mapped back to the original options: whatever the model chose, as original indices
    print(f"\nSmolLM2 blind picks on the leaky question (key 1): {blind['picks']}")
