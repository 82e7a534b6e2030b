import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_AUDIO = ROOT / "examples" / "demo_audio"
BAD_INPUTS = ROOT / "examples" / "bad_inputs"
DEMO_LABELS = ROOT / "examples" / "demo_labels.csv"

# Each bad input and the reject reason it must get.
BAD_REASONS = {
    "absurd_rate.wav": "absurd_sample_rate",
    "all_silence.wav": "all_silence",
    "corrupt_flac.flac": "corrupt_audio",
    "empty_file.flac": "empty_file",
    "inf_samples.wav": "infinite_samples",
    "nan_samples.wav": "nan_samples",
    "not_audio.mp3": "not_audio",
    "truncated.wav": "truncated",
    "zero_length.wav": "zero_length",
    "duplicate_of_001_en_male_low_slow.flac": "duplicate_content",
}


# Fixtures that start real models or servers: a test that uses one is slow whatever its own marks say,
# so `make check` (-m "not slow and not ray") never waits for them.
HEAVY_FIXTURES = {"demo_annotated", "demo_published", "llm_server", "ray_session"}


def pytest_collection_modifyitems(items):
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def one_thread():
    """Two torch threads on a shared 2-core machine run small models many times slower than one (measured
    ~25x for the tiny Eureka model)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mixed_source(tmp_path) -> Path:
    """The demo audio plus the bad inputs; bad inputs sort after the demo so the demo keeps its clips."""
    src = tmp_path / "src"
    shutil.copytree(DEMO_AUDIO, src / "demo")
    shutil.copytree(BAD_INPUTS, src / "zz_bad")
    return src


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray runtime for the whole test session (starting one costs ~5 s)."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def demo_annotated(tmp_path_factory):
    """The demo audio ingested and annotated once per session (real bundled models, local runner).

    Read-only: a test that writes copies it first (`copy_run`)."""
    from dataflux.runners import LocalRunner
    from dataflux.stages.annotate import AnnotateConfig, run_annotate
    from dataflux.stages.ingest import run_ingest
    from storage.run_folder import RunFolder

    run = RunFolder(tmp_path_factory.mktemp("demo") / "run")
    run_ingest(str(DEMO_AUDIO), run, LocalRunner())
    stats = run_annotate(run, LocalRunner(), AnnotateConfig())
    return run.local_path, stats


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.fixture(scope="session")
def llm_server():
    """One real llama.cpp server (the bundled SmolLM2-135M-Instruct) for the session."""
    pytest.importorskip("llama_cpp")
    from dataflux.llm.server import LocalLLMServer

    with LocalLLMServer(threads=2) as server:
        yield server


def run_cli(*args) -> str:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dataflux.cli", *map(str, args), "--no-progress"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def corrupt(questions: list[dict]) -> list[dict]:
    """Copies of template questions with the key moved to a wrong option, under new ids."""
    letters = "ABCD"
    planted = []
    for q in questions:
        wrong = letters[(letters.index(q["answer_key"]) + 1 + len(q["question_id"]) % 3) % 4]
        planted.append({**q, "question_id": "planted_" + q["question_id"], "answer_key": wrong})
    return planted


@pytest.fixture(scope="session")
def demo_published(demo_annotated, tmp_path_factory):
    """`dataflux run --config examples/demo.yaml` on the annotated demo, with a corrupted-key copy of
    every template question planted after generate. Returns (run, original questions, CLI output)."""
    from storage.run_folder import RunFolder

    demo = ROOT / "examples" / "demo.yaml"
    run_dir = copy_run(demo_annotated[0], tmp_path_factory.mktemp("demo_run") / "run")
    run_cli("run", "--config", demo, "--out", run_dir, "--until", "generate")
    run = RunFolder(run_dir)
    originals = run.table("questions").read().to_pylist()
    run.write("questions", corrupt(originals), {"stage": "test-plant"})
    out = run_cli("run", "--config", demo, "--out", run_dir)
    return run, originals, out


def assert_accounted_once(run, source: Path):
    """Every input is a clip (>= 1 row) or exactly one file-level reject, never both, never neither."""
    from dataflux.sources import list_source

    inputs = {i["uri"] for i in list_source(source)}
    clip_sources = set(run.table("clips").read(columns=["source_uri"])["source_uri"].to_pylist())
    file_rejects = [r for r in run.rejects("ingest")["item_id"].to_pylist() if "#" not in r]
    assert len(file_rejects) == len(set(file_rejects)), "an input was rejected twice"
    assert clip_sources.isdisjoint(file_rejects)
    assert clip_sources | set(file_rejects) == inputs
