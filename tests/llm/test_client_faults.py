"""The LLM client against a server that speaks the OpenAI protocol over HTTP and injects faults a real
server cannot be made to produce on demand: 429 storms with Retry-After, 500s, slow and truncated
replies, invalid JSON, `length` finishes."""

import json
import logging
import threading
import time

import pytest
from pydantic import BaseModel

from dataflux.llm import secrets
from dataflux.llm.cache import RequestCache
from dataflux.llm.client import Endpoint, LLMClient, LLMError, run_all
from tests.openai_double import OpenAIDouble, completion

SECRET = "sk-dfx-test-0123456789abcdef"


class Answer(BaseModel):
    letter: str
    reasoning: str


GOOD = json.dumps({"letter": "B", "reasoning": "The voice is low, so B."})


def script(*steps):
    """Replies in order; the last one repeats. A step is (status, body, headers) or a callable."""
    lock = threading.Lock()
    queue = list(steps)

    def reply(body):
        with lock:
            step = queue.pop(0) if len(queue) > 1 else queue[0]
        return step(body) if callable(step) else step

    return reply


def ok(content=GOOD, finish="stop"):
    return (200, completion(content, finish_reason=finish), {})


def endpoint(server, **kw):
    return Endpoint(base_url=server.base_url, model="m", api_key_env="DFX_TEST_KEY",
                    **{"backoff_base_s": 0.01, "max_retries": 4, "timeout_s": 2.0, **kw})


def ask(client, n=1, schema=Answer):
    return run_all(client, [{"messages": [{"role": "user", "content": f"question {i}"}],
                             "template_version": "t1", "schema": schema, "temperature": 0.0}
                            for i in range(n)])


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("DFX_TEST_KEY", SECRET)


def test_429_with_retry_after_cools_the_whole_endpoint_down():
    """Counted at the server, not timed to the millisecond: the cool-down starts when the client reads
    the 429, which is after the server sent it, so every request the client sends afterwards arrives at
    least Retry-After (0.5 s) after the 429 however loaded the machine is. Only the one request already
    in flight beside the 429 (concurrency 2) may arrive earlier. Its reply takes 0.2 s, so the client
    has read the 429 long before that slot frees up (a 40 ms window here flaked on a busy 2-core box)."""
    times = []

    def record(status, retry_after=None):
        def step(body):
            times.append((time.monotonic(), status))
            if status == 429:
                return status, {"error": {"message": "slow down"}}, {"Retry-After": retry_after}
            time.sleep(0.2)
            return ok()
        return step

    with OpenAIDouble(script(record(429, "0.5"), record(200))) as server:
        client = LLMClient(endpoint(server, concurrency=2))
        results = ask(client, 6)
    assert all(r.parsed == Answer.model_validate_json(GOOD) for r in results)
    assert [status for _, status in times].count(429) == 1 and len(times) == 7  # six answers and one retry
    first_429 = next(t for t, status in times if status == 429)
    during_cooldown = [t - first_429 for t, status in times if status == 200 and t - first_429 < 0.5]
    assert len(during_cooldown) <= 1, during_cooldown  # only the request already in flight beside the 429
    assert client.limiter.cooldowns == 1 and client.usage.retries == 1


def test_500_slow_and_invalid_replies_are_retried_then_succeed():
    def slow(body):
        time.sleep(2.5)
        return ok()

    steps = [(500, {"error": {"message": "boom"}}, {}), slow, ok("{not json"), ok('{"letter": "B"}'),
             ok(GOOD)]
    with OpenAIDouble(script(*steps)) as server:
        client = LLMClient(endpoint(server, concurrency=1, max_retries=5))
        result, = ask(client)
    assert result.parsed.letter == "B"
    assert client.usage.requests == 5 and client.usage.retries == 4 and client.usage.failures == 0


def test_length_finish_fails_for_good_after_bounded_retries_and_keeps_the_raw_exchange(caplog):
    caplog.set_level(logging.DEBUG)
    secrets.install_log_filter()
    with OpenAIDouble(script(ok('{"letter": "B", "reas', finish="length"))) as server:
        client = LLMClient(endpoint(server, max_retries=2))
        error, = ask(client)
    assert isinstance(error, LLMError)
    assert "finish_reason=length" in error.reason and "after 3 attempts" in error.reason
    assert client.usage.requests == 3
    assert error.request["messages"][0]["content"] == "question 0"
    assert '"finish_reason": "length"' in error.response
    seen = caplog.text + str(error) + json.dumps(error.request) + (error.response or "")
    assert SECRET not in seen
    assert len(server.requests) == 3


def test_a_4xx_other_than_429_is_not_retried():
    with OpenAIDouble(script((400, {"error": {"message": "bad request"}}, {}))) as server:
        client = LLMClient(endpoint(server))
        error, = ask(client)
    assert isinstance(error, LLMError) and "HTTP 400" in error.reason and client.usage.requests == 1


def test_rerun_sends_no_finished_request_again(tmp_path):
    with OpenAIDouble(script(ok())) as server:
        cache = RequestCache(tmp_path / "cache.sqlite")
        first = LLMClient(endpoint(server), cache)
        ask(first, 5)
        second = LLMClient(endpoint(server), RequestCache(tmp_path / "cache.sqlite"))
        again = ask(second, 5)
    assert len(server.requests) == 5
    assert second.usage.requests == 0 and second.usage.cache_hits == 5
    assert all(r.cached and r.parsed.letter == "B" for r in again)


def test_concurrency_is_bounded_per_endpoint():
    """The server holds each request until three are in flight at once (or 10 s pass), so reaching the
    bound does not depend on how fast a loaded machine starts the client's tasks; it then keeps them
    0.2 s, time enough for a fourth to show up if the client let one through."""
    active, peak, cond = [0], [0], threading.Condition()

    def slow(body):
        with cond:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            cond.notify_all()
            cond.wait_for(lambda: peak[0] >= 3, timeout=10)
        time.sleep(0.2)
        with cond:
            active[0] -= 1
        return ok()

    with OpenAIDouble(script(slow)) as server:
        client = LLMClient(endpoint(server, concurrency=3, timeout_s=15.0))
        ask(client, 12)
    assert peak[0] == 3 and len(server.requests) == 12


def test_structured_output_goes_in_the_form_each_endpoint_takes():
    with OpenAIDouble(script(ok())) as server:
        ask(LLMClient(endpoint(server, flavor="openai")))
        ask(LLMClient(endpoint(server, flavor="llama.cpp")))
    openai_format, llama_format = (r["response_format"] for r in server.requests)
    assert openai_format["type"] == "json_schema" and openai_format["json_schema"]["schema"]["required"] == [
        "letter", "reasoning"]
    assert llama_format["type"] == "json_object" and llama_format["schema"]["required"] == ["letter", "reasoning"]
    assert all(SECRET in h.get("Authorization", h.get("authorization", "")) for h in server.headers)


def test_requests_per_minute_are_paced():
    with OpenAIDouble(script(ok())) as server:
        client = LLMClient(endpoint(server, rpm=120))  # two per second
        start = time.monotonic()
        ask(client, 6)
        elapsed = time.monotonic() - start
    assert elapsed >= 1.9


def test_the_key_appears_in_no_table_log_or_run_json_after_a_failing_generate_run(tmp_path, caplog):
    from dataflux.stages.generate import OpenAIWriterConfig, run_generate
    from storage.run_folder import RunFolder
    from storage.schemas import ANNOTATIONS

    caplog.set_level(logging.DEBUG)
    secrets.install_log_filter()
    run = RunFolder(tmp_path / "run")
    run.write("annotations", [{**{f.name: None for f in ANNOTATIONS}, "clip_id": "clp_1", "producer": "t",
                               "tag_content": "speech", "caption": "A voice."}])
    with OpenAIDouble(script((500, {"error": {"message": f"echo {SECRET}"}}, {}))) as server:
        config = OpenAIWriterConfig(max_nodes_per_clip=1, endpoint={
            "base_url": server.base_url, "model": "m", "api_key_env": "DFX_TEST_KEY", "max_retries": 1,
            "backoff_base_s": 0.01})
        stats = run_generate(run, config)
    assert stats.rejected["invalid_output"] == 1 and stats.extra["llm"]["failures"] == 1
    reject = run.rejects("generate").to_pylist()[0]
    assert "HTTP 500" in reject["detail"]
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert files and not any(SECRET.encode() in p.read_bytes() for p in files)
    assert SECRET not in caplog.text


def test_an_endpoint_that_refuses_connections_is_waited_for_then_used():
    from dataflux.llm.server import free_port

    port = free_port()
    ep = Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env="DFX_TEST_KEY", timeout_s=2.0,
                  max_retries=0)  # connection refusals do not spend the retry budget
    client = LLMClient(ep)
    later = threading.Timer(2.5, lambda: holder.append(OpenAIDouble(script(ok()), port=port).__enter__()))
    holder: list = []
    later.start()
    try:
        start = time.monotonic()
        [result] = ask(client)
        assert result.parsed.letter == "B" and time.monotonic() - start >= 2.0
        assert client.usage.retries >= 1 and client.usage.failures == 0
    finally:
        later.join()
        for server in holder:
            server.__exit__(None, None, None)


def test_an_endpoint_that_stays_unreachable_fails_after_the_wait():
    from dataflux.llm.server import free_port

    ep = Endpoint(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", api_key_env="DFX_TEST_KEY",
                  timeout_s=2.0, unreachable_wait_s=2.0)
    start = time.monotonic()
    [result] = ask(LLMClient(ep))
    assert isinstance(result, LLMError) and "unreachable for 2 s" in str(result)
    assert 2.0 <= time.monotonic() - start < 8
