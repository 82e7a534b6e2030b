"""The `openai` judge backend against a real llama.cpp server; the openai-flavour request shape
(`response_format={"type": "json_schema"}`) against the same server; the embedded server a stage starts
itself when its endpoint has no base_url."""

import json
import socket
from contextlib import ExitStack

import pytest

from dataflux.annotate.tags import TagThresholds
from dataflux.llm.client import Endpoint, LLMClient, LLMError, run_all
from dataflux.llm.server import MODEL_ALIAS, LocalLLMServer
from dataflux.stages.verify import VerifyConfig, build_chain
from verifiers.judges import LLMJudge, Verdict

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.slow
GENDER = "speaker_traits > gender > perceived_gender > speaker_gender"
ANSWERS = [{"answerer": n, "backend": "analyzer", "model": "m", "letter": "B",
            "reasoning": "A woman's voice.\nAnswer: B"} for n in ("a", "b")]
ITEM = {"question_id": "q1", "clip_id": "c1", "node_path": GENDER, "question": "Who speaks?",
        "options": ["A man's voice", "A woman's voice", "A child", "Nobody"], "audio": b"", "round": 0,
        "answers": json.dumps(ANSWERS), "annotation": json.dumps({"caption": "A woman speaks.", "gender": "female"})}


def judge_of(verify: dict, stack: ExitStack) -> LLMJudge:
    chain = build_chain(VerifyConfig.model_validate(verify), TagThresholds(), None, stack)
    assert isinstance(chain[-1], LLMJudge)
    return chain[-1]


def judge_once(judge: LLMJudge) -> dict:
    judge.setup()
    try:
        out = judge.process_batch([ITEM])
    finally:
        judge.teardown()
    assert not out.rejects, out.rejects
    return out.rows[0]


def test_the_openai_judge_backend_on_a_real_llama_cpp_server(llm_server):
    endpoint = {"base_url": llm_server.base_url, "model": MODEL_ALIAS, "flavor": "llama.cpp", "max_retries": 2}
    with ExitStack() as stack:
        row = judge_once(judge_of({"judge": {"backend": "openai", "endpoint": endpoint}}, stack))
    assert (row["judge_backend"], row["judge_model"]) == ("openai", MODEL_ALIAS)
    assert Verdict.model_validate_json(row["verdict"]) == Verdict.model_validate(json.loads(row["judge_raw"],
                                                                                            strict=False))


def test_the_openai_flavour_json_schema_is_refused_by_llama_cpp_python(llm_server):
    """What a real OpenAI endpoint takes (`{"type": "json_schema", ...}`) is refused by the installed
    llama-cpp-python server (0.3.x), whose response_format type is only "text" or "json_object"
    (llama_types.ChatCompletionRequestResponseFormat); its error handler turns that validation error
    into an HTTP 500. That is why the embedded endpoint uses the "llama.cpp" flavour. The server that
    speaks json_schema is vLLM's (the `vllm` backend, flavour "openai", tests/roles); here the openai
    shape is checked for its refusal and its reason; if llama.cpp starts accepting it, assert the reply."""
    client = LLMClient(Endpoint(base_url=llm_server.base_url, model=MODEL_ALIAS, flavor="openai", max_retries=0))
    assert client.response_format({"type": "object"}, "Verdict")["type"] == "json_schema"
    (reply,) = run_all(client, [{"messages": [{"role": "user", "content": "Say hi as JSON."}],
                                 "template_version": "t", "schema": Verdict, "max_tokens": 16}])
    assert isinstance(reply, LLMError) and reply.reason.startswith("HTTP 500"), reply
    log = llm_server.log_path.read_text(errors="replace")
    assert "'loc': ('body', 'response_format', 'type')" in log and "Input should be 'text' or 'json_object'" in log


def test_a_local_judge_without_base_url_starts_and_stops_its_own_server(monkeypatch):
    started = []
    real_start = LocalLLMServer.start

    def spy(self):
        started.append(real_start(self))
        return started[-1]

    monkeypatch.setattr(LocalLLMServer, "start", spy)
    with ExitStack() as stack:
        judge = judge_of({"judge": {"backend": "local"}}, stack)
        (server,) = started
        process, port = server.process, server.port
        assert judge.endpoint.base_url == server.base_url and process.poll() is None
        row = judge_once(judge)
    assert row["judge_backend"] == "local" and row["judge_model"] == MODEL_ALIAS
    assert process.poll() is not None  # stopped when the stage's stack closed
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
