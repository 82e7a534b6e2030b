"""Against a real Prefect server that the test starts (SQLite, loopback) with a process worker:
deploy, run the synthesize deployment through the worker on the demo audio, check the flow and task
states, the artifacts and their counts, the published event and the retrain chain it triggers
(eureka-train, then eureka-evaluate, with the tiny model), and a headless Chromium screenshot of the
flow-run page. Then an incremental run that processes only new files."""

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import DEMO_AUDIO, ROOT, copy_run

pytestmark = pytest.mark.slow
OUTPUT = Path(os.environ.get("DATAFLUX_TEST_OUTPUT", ROOT / "test-output"))
FAST_VERIFY = {"answerers": [{"name": "listener_a", "backend": "analyzer", "stack": "signal"},
                             {"name": "listener_b", "backend": "analyzer", "stack": "signal"}],
               "judge": {"backend": "rules"}}


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import LocalPrefect

    home = tmp_path_factory.mktemp("prefect")
    server = LocalPrefect(home=home, log_dir=OUTPUT / "prefect-logs")
    with server, temporary_settings({PREFECT_API_URL: server.api_url}):
        os.environ["PREFECT_API_URL"] = server.api_url
        try:
            yield server
        finally:
            os.environ.pop("PREFECT_API_URL", None)


def config_file(tmp_path, **extra) -> str:
    path = tmp_path / "synth.yaml"
    path.write_text(yaml.safe_dump({"generate": {"writer": "template"}, "verify": FAST_VERIFY, **extra}))
    return str(path)


def wait_for_runs(client, deployment_name: str, n: int, timeout: float = 600):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    deadline = time.time() + timeout
    while time.time() < deadline:
        names = DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name]))
        runs = client.read_flow_runs(deployment_filter=names)
        final = [r for r in runs if r.state and r.state.is_final()]
        if len(final) >= n:
            return final
        time.sleep(2)
    raise TimeoutError(f"{deployment_name}: fewer than {n} finished flow runs after {timeout:.0f} s")


def wait_for_event(client, name: str, timeout: float = 60) -> list:
    """Events are stored asynchronously: poll until one named `name` is readable."""
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.time() + timeout
    while True:
        events = client.read_events(filter=EventFilter(event=EventNameFilter(name=[name])), limit=50).events
        if events or time.time() > deadline:
            assert events, f"no {name} event within {timeout:.0f} s"
            return events
        time.sleep(1)


def test_deploy_run_through_the_worker_artifacts_event_and_retrain_chain(prefect, demo_annotated, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.deployments import run_deployment

    from dataflux.config import load_config
    from flows.deploy import deploy
    from storage.run_folder import RunFolder

    deployed = {d["name"]: d for d in deploy()}
    assert set(deployed) == {"dataflux-synthesize/dataflux-synthesize", "eureka-train/eureka-train",
                             "eureka-evaluate/eureka-evaluate", "dataflux-maintain/dataflux-maintain",
                             "dataflux-watch/dataflux-watch", "dataflux-backfill/dataflux-backfill"}
    run_dir = copy_run(demo_annotated[0], tmp_path / "run")
    config = config_file(tmp_path)
    flow_run = run_deployment("dataflux-synthesize/dataflux-synthesize", timeout=900,
                              parameters={"config": config, "source": str(DEMO_AUDIO),
                                          "run_dir": str(run_dir)})
    assert flow_run.state.is_completed(), flow_run.state
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        assert tasks and all(t.state.is_completed() for t in tasks)
        info = json.loads((run_dir / "run.json").read_text())["invocations"][-1]["stages"]
        # exactly the task runs of flows/synthesize.py's formula, with S = 1 shard (51 clips, shard_size
        # 2000) and the passes the closed loop made: ingest 1 + annotate S + (generate S + verify S +
        # filter 1) per pass + publish 1. The loop stops after the first pass that finds no work, so every
        # pass but the last wrote a round of questions, unless it hit the cap of max_rounds + 2 passes.
        passes = len(info["generate"]["loop_passes"])
        rounds = set(RunFolder(run_dir).table("questions").read(columns=["round"])["round"].to_pylist())
        assert rounds == set(range(passes - 1)) or passes == load_config(config).filter.max_rounds + 2, (rounds,
                                                                                                         passes)
        names = Counter(t.name for t in tasks)
        assert names == Counter({"ingest[0/1]": 1, "annotate[0/1]": 1, "generate[0/1]": passes,
                                 "verify[0/1]": passes, "filter[0/1]": passes, "publish[0/1]": 1}), names
        assert len(tasks) == 1 + 1 + 3 * passes + 1
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        keys = {a.key for a in artifacts if a.key}
        assert {"dataflux-ingest", "dataflux-annotate", "dataflux-generate", "dataflux-verify", "dataflux-filter",
                "dataflux-publish", "dataflux-corpus"} <= keys
        verify_table = next(a for a in artifacts if a.key == "dataflux-verify")
        rows = verify_table.data if isinstance(verify_table.data, list) else json.loads(verify_table.data)
        assert sum(r["rows_out"] for r in rows) == info["verify"]["rows_out"] > 0
        assert any(a.type == "progress" for a in artifacts)
        card = next(a for a in artifacts if a.key == "dataflux-corpus")
        assert "Funnel" in card.data and "DataFlux corpus, version 0" in card.data

        published = [e for e in wait_for_event(client, "dataflux.corpus.published")
                     if e.payload.get("run_dir") == str(run_dir)]
        assert published and published[0].payload["version"] == 0

    # the published event matched eureka-train's trigger; its completion triggers eureka-evaluate
    with get_client(sync_client=True) as client:
        train_runs = wait_for_runs(client, "eureka-train", 1)
        assert train_runs[0].parameters["run_dir"] == str(run_dir)
        assert train_runs[0].state.is_completed(), train_runs[0].state
        eval_runs = wait_for_runs(client, "eureka-evaluate", 1)
        assert eval_runs[0].state.is_completed(), eval_runs[0].state
        done = wait_for_event(client, "eureka.evaluation.completed")
        assert done[0].payload["verdict"] == "first" and done[0].payload["metrics"]["mcq"]["n"] > 0

    screenshot(prefect, flow_run.id, card.id)


def screenshot(prefect, flow_run_id, card_id) -> None:
    """Headless Chromium: the flow-run page's Artifacts tab and the corpus card's own page, rendered
    after the app has fetched its data; both PNGs are kept in test-output/."""
    from PIL import Image

    from tests.flows.browser import Browser

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with Browser() as browser:
        browser.open(f"{prefect.ui_url}/runs/flow-run/{flow_run_id}", wait_for="Artifacts")
        browser.click_text("Artifacts")
        text = wait_text(browser, "dataflux-corpus")
        for key in ("dataflux-ingest", "dataflux-verify", "dataflux-publish", "dataflux-corpus"):
            assert key in text, key
        browser.screenshot(OUTPUT / "flow-run-artifacts.png")
        card = browser.open(f"{prefect.ui_url}/artifacts/artifact/{card_id}", wait_for="Funnel")
        assert "DataFlux corpus, version 0" in card and "Funnel" in card  # the markdown is rendered
        browser.screenshot(OUTPUT / "corpus-card.png")
    for name in ("flow-run-artifacts.png", "corpus-card.png"):
        low, high = Image.open(OUTPUT / name).convert("L").getextrema()
        assert high - low > 100, f"{name} is blank"


def wait_text(browser, needle: str, timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while True:
        text = browser.text()
        if needle in text or time.time() > deadline:
            return text
        time.sleep(1)


def test_an_incremental_run_processes_only_the_new_files(prefect, tmp_path):
    from flows.synthesize import synthesize
    from storage.run_folder import RunFolder

    src = tmp_path / "src"
    src.mkdir()
    files = sorted(p.name for p in DEMO_AUDIO.iterdir())
    for name in ("001_en_male_low_slow.flac", "016_en_female_high_slow.flac", "038_tone_440hz.ogg"):
        shutil.copy(DEMO_AUDIO / name, src / name)
    config = config_file(tmp_path, annotate={"asr": {"model": "tiny.en", "language": "en"}})
    run_dir = str(tmp_path / "run")
    first = synthesize(config=config, source=str(src), run_dir=run_dir)
    for name in ("010_en_female_low_slow.m4a", "029_fr_male.mp3"):
        assert name in files
        shutil.copy(DEMO_AUDIO / name, src / name)
    second = synthesize(config=config, source=str(src), run_dir=run_dir)
    stages = json.loads((Path(run_dir) / "run.json").read_text())["invocations"][-1]["stages"]
    assert stages["ingest"]["rows_out"] == 2 and stages["annotate"]["rows_in"] == 2
    run = RunFolder(run_dir)
    assert second["version"] == first["version"] + 1
    old = set(run.table("corpus").read(version=first["version"], columns=["question_id"])["question_id"].to_pylist())
    new = set(run.table("corpus").read(columns=["question_id"])["question_id"].to_pylist())
    assert old < new
    rows = run.table("clips").read(columns=["clip_id", "source_uri"]).to_pylist()
    clips = {r["clip_id"]: r["source_uri"] for r in rows}
    added = {c for c, uri in clips.items() if Path(uri).name in ("010_en_female_low_slow.m4a", "029_fr_male.mp3")}
    corpus_clips = set(run.table("corpus").read(columns=["clip_id"])["clip_id"].to_pylist())
    assert added & corpus_clips  # the new version holds items of the new clips beside the old ones
    third = synthesize(config=config, source=str(src), run_dir=run_dir)  # nothing new: cached, no new version
    assert third["version"] == second["version"] and third["new_items"] == 0
