"""Against a real llama.cpp server (llama-cpp-python) serving the bundled SmolLM2-135M-Instruct."""

import pytest

pytest.importorskip("llama_cpp")

from dataflux.generate.writers import WriterOutput  # noqa: E402
from dataflux.llm.client import Endpoint, LLMClient, run_all  # noqa: E402
from dataflux.llm.server import MODEL_ALIAS  # noqa: E402
from dataflux.stages.generate import LocalWriterConfig, run_generate  # noqa: E402
from dataflux.taxonomy import load_taxonomy  # noqa: E402
from dataflux.generate.prompts import writer_messages  # noqa: E402
from storage.run_folder import RunFolder  # noqa: E402
from storage.schemas import ANNOTATIONS  # noqa: E402

pytestmark = pytest.mark.slow
ANNOTATION = dict(clip_id="clp_test", tag_content="speech", gender="male", tag_pitch="low", tag_rate="slow",
                  tag_loudness="normal", tag_quality="clean", language="en", duration_s=4.0,
                  caption="A deep male voice speaks English slowly.", transcript="The quick brown fox.")


@pytest.fixture(scope="module")
def server(llm_server):
    return llm_server


def test_the_server_binds_to_loopback_and_answers_valid_json_under_the_schema(server):
    assert server.base_url.startswith("http://127.0.0.1:")
    client = LLMClient(Endpoint(base_url=server.base_url, model=MODEL_ALIAS, flavor="llama.cpp", max_retries=2))
    leaf = load_taxonomy()[0]
    request = {"messages": writer_messages(ANNOTATION, leaf, 2), "template_version": "t", "schema": WriterOutput,
               "temperature": 0.0, "max_tokens": 400}
    # no request cache: the server is asked three times. llama.cpp reuses the KV cache of the prompt
    # prefix it shares with the request before, which changes the arithmetic (and a near-tie token), so
    # only repeats that follow the same request start from the same state: the 2nd and 3rd are compared
    (reply,), (second,), (third,) = (run_all(client, [request]) for _ in range(3))
    # the server's grammar holds the reply to the schema, so every attempt parses (no retry), and greedy
    # decoding from the same state gives the same text
    assert isinstance(reply.parsed, WriterOutput) and not reply.cached and third.text == second.text
    assert client.usage.requests == 3 and client.usage.retries == 0 and client.usage.completion_tokens > 0


def test_generate_with_the_local_writer_accounts_for_every_item_and_reruns_from_cache(tmp_path, server):
    run = RunFolder(tmp_path / "run")
    rows = [{**{f.name: None for f in ANNOTATIONS}, **ANNOTATION, "clip_id": f"clp_{i}", "producer": "test"}
            for i in range(2)]
    run.write("annotations", rows)
    config = LocalWriterConfig(questions_per_node=2, max_nodes_per_clip=2,
                               endpoint={"base_url": server.base_url, "model": MODEL_ALIAS, "flavor": "llama.cpp",
                                         "max_retries": 1})
    stats = run_generate(run, config)
    assert stats.rows_in == 4
    questions = run.table("questions").read().to_pylist()
    rejects = [r for r in run.rejects("generate").to_pylist() if "#" not in r["item_id"]]
    accounted = {f"{q['clip_id']}|{q['node_path']}|r{q['round']}" for q in questions} | {r["item_id"] for r in rejects}
    assert len(accounted) == 4 and not ({r["item_id"] for r in rejects} &
                                        {f"{q['clip_id']}|{q['node_path']}|r{q['round']}" for q in questions})
    for q in questions:
        assert len(q["options"]) == 4 and q["writer_backend"] == "local" and q["answer_key"] is None
    again = run_generate(run, config)
    assert again.rows_in == 0 and again.skipped == 4
