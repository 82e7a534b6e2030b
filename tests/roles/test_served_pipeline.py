"""The whole pipeline with every model role served on the Ray cluster (issue 15): an audio LM captions the
clips and answers the questions beside an analyzer listener, a text LM writes the questions and judges,
each on the `vllm` backend (vLLM's engine in its own venv) and again on the `hf` backend (transformers).
Every input ends as a kept row or one reject, and the engines' own request counters match the stages'
requests. A run killed with SIGKILL during verify and run again verifies only what the kill left undone,
with the answers cached before the kill kept (the request layer then sends none of them again: the cache
hit counts are checked in test_served_backends)."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from dataflux.config import load_config
from dataflux.llm.cache import RequestCache
from dataflux.llm.replicas import start_replicas, stop_replicas
from dataflux.pipeline import run_pipeline
from storage.run_folder import RunFolder
from tests.conftest import DEMO_AUDIO, ROOT, assert_accounted_once
from tests.faults.harness import CHEAP_ANNOTATE
from tests.roles.conftest import audio_spec, smol_spec

pytestmark = [pytest.mark.slow, pytest.mark.ray]
EOS = {"logit_bias": {"50363": 100}}  # <|im_end|>: the random audio LM stops at once instead of at max_tokens
FILES = ["001_en_male_low_slow.flac", "016_en_female_high_slow.flac", "006_en_male_medium_fast.flac",
         "011_en_female_low_normal.flac"]


def source(tmp_path, files=FILES):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes((DEMO_AUDIO / name).read_bytes())
    return folder


def served(spec) -> dict:
    return spec.model_dump(mode="json", exclude_none=True, exclude={"base_url", "base_urls"})


def write_config(tmp_path, src, audio, text, backend: str, nodes: int = 1) -> str:
    config = {"source": str(src), "out": str(tmp_path / "run"), "runner": "ray",
              "annotate": {**CHEAP_ANNOTATE, "caption": {"backend": backend, "endpoint": served(audio),
                                                         "max_tokens": 12, "params": EOS}},
              "generate": {"writer": backend, "endpoint": served(text), "questions_per_node": 2,
                           "max_nodes_per_clip": nodes, "max_tokens": 400},
              "verify": {"answerers": [{"name": "audio_lm", "backend": backend, "endpoint": served(audio),
                                        "max_tokens": 8, "params": EOS},
                                       {"name": "listener", "backend": "analyzer", "stack": "signal"}],
                         "judge": {"backend": backend, "endpoint": served(text)}},
              "filter": {"max_rounds": 0}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def served_requests(endpoint, reasons: tuple[str, ...] = ("stop", "length")) -> int:
    """Requests an engine finished with an answer, by its own metrics (vLLM's counter per finish reason, whose
    `abort` counts requests a dead client left; or the hf server's counter)."""
    total = 0
    for url in (endpoint.base_url, *endpoint.base_urls):
        with urllib.request.urlopen(url.removesuffix("/v1") + "/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("dataflux_hf_requests_completed_total") or (
                        line.startswith("vllm:request_success_total")
                        and any(f'finished_reason="{reason}"' in line for reason in reasons)):
                    total += int(float(line.rsplit(" ", 1)[1]))
    return total


def settled(cache: RequestCache, *endpoints) -> tuple[int, int]:
    """(answers in the run's cache, requests the engines finished) once neither moves: metrics are recorded
    per engine step, and a killed driver's actors may finish a request and cache it before Ray ends them."""
    last = None
    while True:
        now = sum(cache.templates().values()), sum(served_requests(e) for e in endpoints)
        if now == last:
            return now
        last = now
        time.sleep(3.0)


def running(endpoint) -> float:
    with urllib.request.urlopen(endpoint.base_url.removesuffix("/v1") + "/metrics", timeout=10) as r:
        return sum(float(line.rsplit(" ", 1)[1]) for line in r.read().decode().splitlines()
                   if line.startswith(("vllm:num_requests_running", "vllm:num_requests_waiting")))


def assert_every_item_accounted(run: RunFolder, src) -> None:
    assert_accounted_once(run, src)
    clips = run.table("clips").num_rows()
    questions = set(run.table("questions").read(columns=["question_id"])["question_id"].to_pylist())
    verdicts = run.table("verdicts").read(columns=["question_id"])["question_id"].to_pylist()
    assert len(verdicts) == len(set(verdicts)), "a question was judged twice"
    verify_rejects = set(run.rejects("verify")["item_id"].to_pylist())
    assert set(verdicts) | verify_rejects == questions and not set(verdicts) & verify_rejects
    kept = run.table("kept").read(columns=["question_id"])["question_id"].to_pylist() \
        if "kept" in run.tables() else []
    filtered = run.rejects("filter")["item_id"].to_pylist()
    assert sorted(kept + filtered) == sorted(verdicts)
    generated = {q.rsplit("|", 1)[0] for q in run.rejects("generate")["item_id"].to_pylist()}
    assert clips and (questions or generated)


def check_roles(run: RunFolder, backend: str) -> None:
    notes = run.table("annotations").read(columns=["caption_backend", "caption_model"]).to_pylist()
    assert {(n["caption_backend"], n["caption_model"]) for n in notes} == {(backend, "tiny-qwen2-audio")}
    questions = run.table("questions").read(columns=["writer_backend", "writer_model", "question"]).to_pylist()
    assert questions, "the served writer produced no usable question"
    assert {(q["writer_backend"], q["writer_model"]) for q in questions} == {(backend, "smollm2-135m")}
    verdicts = run.table("verdicts").read(columns=["answers", "judge_backend", "judge_model"]).to_pylist()
    assert verdicts and {(v["judge_backend"], v["judge_model"]) for v in verdicts} == {(backend, "smollm2-135m")}
    for v in verdicts:
        served_answer, listener = v["answers"]
        assert (served_answer["backend"], served_answer["model"]) == (backend, "tiny-qwen2-audio")
        assert served_answer["raw"] is not None and listener["backend"] == "analyzer"


@pytest.mark.parametrize("backend", ["vllm", "hf"])
def test_every_role_served_on_the_cluster(backend, request, tmp_path, tiny_models, smollm2, ray_session):
    if backend == "vllm":  # the session's engines (an engine start costs 80-100 s here)
        audio_spec_, audio = request.getfixturevalue("vllm_audio")
        text_spec_, text = request.getfixturevalue("vllm_text")
    else:
        audio_spec_, text_spec_ = audio_spec(tiny_models["audio"]), smol_spec(smollm2, "hf")
        audio, text = start_replicas(None, audio_spec_, "hf"), start_replicas(None, text_spec_, "hf")
    src = source(tmp_path, FILES[:2])
    before = served_requests(audio), served_requests(text)
    try:
        info = run_pipeline(load_config(write_config(tmp_path, src, audio_spec_, text_spec_, backend)))
    finally:
        if backend == "hf":
            counts = served_requests(audio) - before[0], served_requests(text) - before[1]
            stop_replicas(audio_spec_, "hf")
            stop_replicas(text_spec_, "hf")
    if backend == "vllm":
        counts = served_requests(audio) - before[0], served_requests(text) - before[1]
    run = RunFolder(tmp_path / "run")
    assert_every_item_accounted(run, src)
    check_roles(run, backend)
    stages = info["invocations"][-1]["stages"]
    questions = run.table("questions").num_rows()
    # the audio LM answered the two captions and one answer per question; the text LM every writer request
    # and one verdict per question (nothing failed, nothing was retried)
    assert run.rejects("verify").num_rows == 0
    assert counts[0] == 2 + questions
    assert counts[1] == stages["generate"]["llm"]["requests"] + questions


@pytest.mark.timeout(1500)  # run alone, it starts both engines (~100 s each); in the suite they are up already
def test_sigkill_during_verify_then_a_rerun_sends_no_finished_request_again(tmp_path, vllm_audio, vllm_text,
                                                                            ray_session):
    (audio_spec_, audio), (text_spec_, text) = vllm_audio, vllm_text
    src = source(tmp_path, FILES[:3])
    config = write_config(tmp_path, src, audio_spec_, text_spec_, "vllm", nodes=2)  # verify has work left
    address = ray_session.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "dataflux.cli", "run", "--config", config, "--set", f"ray_address={address}",
           "--no-progress"]
    clips = 3
    audio0 = served_requests(audio)
    log = open(tmp_path / "first.log", "w")
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    answers_seen_at, deadline = None, time.monotonic() + 900
    while time.monotonic() < deadline and child.poll() is None:
        if answers_seen_at is None and served_requests(audio) - audio0 > clips:  # verify's answers began
            answers_seen_at = served_requests(text)
        if answers_seen_at is not None and served_requests(text) - answers_seen_at >= 1:  # a verdict is done
            os.killpg(child.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    while running(audio) or running(text):  # requests in flight when the driver died end (answered or aborted)
        time.sleep(0.5)
    cache = RequestCache(tmp_path / "run" / "llm_cache.sqlite")
    cached_before, _ = settled(cache, audio, text)
    assert cached_before > clips  # captions, writer replies and some of verify's were answered before the kill
    killed = RunFolder(tmp_path / "run")
    judged_before = killed.table("verdicts").num_rows() if "verdicts" in killed.tables() else 0
    questions = killed.table("questions").num_rows()
    assert judged_before < questions  # the kill left verify work to do

    with open(tmp_path / "rerun.log", "w") as out:
        rerun = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    assert rerun.returncode == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    cached_after, _ = settled(cache, audio, text)
    assert cached_after >= cached_before
    stages = json.loads((tmp_path / "run" / "run.json").read_text())["invocations"][-1]["stages"]
    assert stages["verify"]["rows_in"] == questions - judged_before  # only what the kill left undone
    run = RunFolder(tmp_path / "run")
    assert_every_item_accounted(run, src)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["invocations"][-1]["status"] == "completed"
