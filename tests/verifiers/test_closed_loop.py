"""The closed loop: fixable rejects go back to the question writer with the reason, for at most
`max_rounds` rounds, and the loop ends. The writer is an HTTP stand-in that speaks the OpenAI protocol,
because a real model cannot be made to write malformed questions on demand."""

import json

from dataflux.pipeline import closed_loop
from dataflux.stages.generate import OpenAIWriterConfig, run_generate
from storage.run_folder import RunFolder
from storage.schemas import ANNOTATIONS
from tests.openai_double import OpenAIDouble, completion

GOOD = {"is_success": True, "reason": "fits", "questions": [
    {"question": "How does the voice sound?", "options": ["Deep", "High", "Whispered", "Shouted"]}]}
BAD = {"is_success": True, "reason": "fits", "questions": [
    {"question": "How does the voice sound?", "options": ["Deep", "deep", "High", "Shouted"]}]}


def writer(fix_on_feedback: bool, prompts: list):
    def reply(body):
        user = body["messages"][-1]["content"]
        prompts.append(user)
        fixed = fix_on_feedback and "A reviewer rejected" in user
        return 200, completion(json.dumps(GOOD if fixed else BAD)), {}
    return OpenAIDouble(reply)


def setup_run(tmp_path) -> RunFolder:
    run = RunFolder(tmp_path / "run")
    base = {f.name: None for f in ANNOTATIONS}
    run.write("annotations", [{**base, "clip_id": f"clp_{i}", "tag_content": "speech", "gender": "male",
                               "caption": "A man speaks.", "producer": "test"} for i in range(3)])
    return run


def loop(run, double, rounds=2):
    config = OpenAIWriterConfig(questions_per_node=1, max_nodes_per_clip=1,
                                endpoint={"base_url": double.base_url, "model": "w", "max_retries": 0})
    stats = {}
    passes = closed_loop({"generate": lambda: run_generate(run, config, max_rounds=rounds)}, rounds, stats)
    return passes, stats


def test_a_writer_that_never_fixes_its_questions_stops_after_max_rounds(tmp_path):
    run, prompts = setup_run(tmp_path), []
    with writer(False, prompts) as double:
        passes, stats = loop(run, double)
    assert [p["generate"]["in"] for p in passes] == [3, 3, 3, 0]  # rounds 0, 1, 2; then nothing is left
    rejects = run.rejects("generate").to_pylist()
    items = [r["item_id"] for r in rejects if "#" not in r["item_id"]]
    assert sorted(i.rsplit("|", 1)[1] for i in items) == ["r0"] * 3 + ["r1"] * 3 + ["r2"] * 3
    assert len(set(items)) == 9  # each (clip, node, round) accounted for once
    assert sum("options are not distinct" in p for p in prompts) == 6  # rounds 1 and 2 carry the reason


def test_feedback_fixes_the_questions_in_the_next_round(tmp_path):
    run, prompts = setup_run(tmp_path), []
    with writer(True, prompts) as double:
        passes, _ = loop(run, double)
    assert [p["generate"]["in"] for p in passes] == [3, 3, 0]
    questions = run.table("questions").read().to_pylist()
    assert len(questions) == 3 and {q["round"] for q in questions} == {1}
    with writer(True, []) as double:  # a re-run finds the loop finished
        again, _ = loop(run, double)
    assert [p["generate"]["in"] for p in again] == [0]
