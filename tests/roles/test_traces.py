"""Reasoning traces (issue 15): the judge reads each answerer's thinking, a kept item carries the winner's
trace (its letter references rewritten with the answer-position balance), and training can target it."""

import json
from collections import Counter

from dataflux.stages.filter import FilterConfig, decide
from tests.verifiers.test_filters import question, verdict
from verifiers.filters import Balancer, Deduplicator
from verifiers.judges import TRACE_CHARS, judge_messages

THINK_A = "The pitch sits near 210 Hz, so option B (a woman's voice) fits; not option A."


def with_traces(v: dict, a: str | None, b: str | None) -> dict:
    v["answers"][0]["trace"], v["answers"][1]["trace"] = a, b
    return v


def test_the_judge_reads_each_answerers_thinking_before_its_reply():
    item = {**question("q1"), **with_traces(verdict("q1"), THINK_A, "x" * (TRACE_CHARS + 500) + "END")}
    item["answers"] = json.dumps(item["answers"])
    user = judge_messages(item)[1]["content"]
    block_a = user[user.index("<<<ANSWER MODEL_A"):user.index("ANSWER>>>")]
    assert block_a.index("Thinking:\n" + THINK_A) < block_a.index("Reply:\nThe voice is around 210 Hz")
    block_b = user[user.index("<<<ANSWER MODEL_B"):]
    assert "[...] " in block_b and block_b.count("x") == TRACE_CHARS - len("END") and "xEND" in block_b


def test_without_traces_the_judge_prompt_is_unchanged():
    item = {**question("q1"), **verdict("q1")}
    item["answers"] = json.dumps(item["answers"])
    assert "Thinking:" not in judge_messages(item)[1]["content"]


def test_a_kept_item_carries_the_winners_trace_relabelled_with_the_balance():
    config = FilterConfig()
    dedup, balancer = Deduplicator(config.near_duplicate), Balancer(Counter({"B": 5}))  # B is full: B moves
    v = with_traces(verdict("q1"), THINK_A, "other")  # a TIE: the first answer is the one kept
    row, why = decide(v, question("q1"), config, dedup, Counter(), balancer, {})
    assert why is None and row["answer"] != "B"
    new = row["answer"]
    assert row["trace"] == THINK_A.replace("option B", f"option {new}")
    plain, _ = decide(verdict("q2", clip="c9"), question("q2", clip="c9"), config, dedup, Counter(), balancer, {})
    assert plain["trace"] is None
