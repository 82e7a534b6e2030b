"""The served backends' config and request spreading, without an engine (fast)."""

from dataflux.config import load_config
from dataflux.llm.client import Endpoint, LLMClient, run_all
from dataflux.llm.replicas import ServedEndpoint, replica_key, server_command
from tests.conftest import ROOT
from tests.openai_double import OpenAIDouble, completion


def test_requests_are_spread_over_the_replicas_and_cached_alike():
    with OpenAIDouble(lambda body: (200, completion("a"), {})) as one, \
            OpenAIDouble(lambda body: (200, completion("b"), {})) as two:
        client = LLMClient(Endpoint(base_url=one.base_url, base_urls=(two.base_url,), model="m"))
        replies = run_all(client, [{"messages": [{"role": "user", "content": str(i)}], "template_version": "v"}
                                   for i in range(6)])
    assert len(one.requests) == len(two.requests) == 3
    assert sorted(r.text for r in replies) == ["a"] * 3 + ["b"] * 3


def test_the_cluster_example_lays_out_every_role_and_the_writer_and_judge_share_replicas():
    config = load_config(ROOT / "examples" / "cluster.yaml")
    assert config.annotate.caption.backend == config.generate.writer == config.verify.judge.backend == "vllm"
    assert {a.backend for a in config.verify.answerers} == {"vllm"}
    assert replica_key(config.generate.endpoint, "vllm") == replica_key(config.verify.judge.endpoint, "vllm")
    assert replica_key(config.generate.endpoint, "vllm") != replica_key(config.generate.endpoint, "hf")
    assert config.verify.judge.endpoint.tensor_parallel_size == 4


def test_the_server_command_runs_vllm_from_its_own_venv():
    spec = ServedEndpoint(model="/m", served_name="x", tensor_parallel_size=2, max_model_len=1024, device="cpu",
                          reasoning_parser="qwen3", extra_args=("--seed", "1"))
    cmd = server_command(spec, "vllm", "10.0.0.5", 8001)
    assert cmd[0].endswith(".venv-vllm/bin/python") and cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    flags = {flag: cmd[cmd.index(flag) + 1] for flag in
             ("--tensor-parallel-size", "--max-model-len", "--reasoning-parser", "--host")}
    assert flags["--tensor-parallel-size"] == "2" and flags["--max-model-len"] == "1024"
    assert flags["--reasoning-parser"] == "qwen3" and flags["--host"] == "10.0.0.5"
    assert cmd[-3:] == ["--enforce-eager", "--seed", "1"]
