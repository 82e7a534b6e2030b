"""The demo, end to end, through the CLI: `dataflux run --config examples/demo.yaml` (the embedded
defaults) on the demo audio, with planted questions whose answer key was deliberately corrupted.

The session's annotated demo folder stands in for the first two stages (the run skips them as done);
everything after annotate runs here for real.
"""

import json

import pytest

from tests.conftest import ROOT, run_cli
from dataflux.mcq import LETTERS

pytestmark = pytest.mark.slow
DEMO = ROOT / "examples" / "demo.yaml"


@pytest.fixture(scope="module")
def demo_run(demo_published):
    return demo_published


def test_the_run_prints_the_corpus_and_the_funnel(demo_run):
    run, _, out = demo_run
    assert f"corpus: {run.table('corpus').uri} version 0" in out
    assert "funnel: clips 51 -> annotations 51 -> questions" in out
    export = run.local_path / "published" / "corpus-v0"
    for name in ("README.md", "report.html", "summary.json", "plots/funnel.png", "plots/rejects.png",
                 "plots/nodes.png", "plots/measures.png"):
        assert (export / name).exists(), name
    summary = json.loads((export / "summary.json").read_text())
    assert summary["funnel"]["corpus"] == run.table("corpus").num_rows() > 0
    assert summary["answer_letters"]["balanced"]
    assert summary["answerer_agreement"]["cohen_kappa"] > 0.5
    blind = summary["text_answerable"]  # the rule check saw every verified item; the card reports its rate
    assert blind["checked"] == summary["funnel"]["verified"] and blind["rate"] is not None
    card = (export / "README.md").read_text()
    assert "## Does the audio matter?" in card and "## Keys per node" in card
    assert set(summary["keys_per_node"]) == set(summary["taxonomy_coverage"]["kept_per_node"])


SPEECH_DOMAINS = ("speaker_traits", "delivery", "emotion_attitude", "content")


def test_the_corpus_covers_leaves_beyond_speech(demo_run, capsys):
    run, _, _ = demo_run
    nodes = set(run.table("corpus").read(columns=["node_path"])["node_path"].to_pylist())
    beyond = {n for n in nodes if n.split(" > ")[0] not in SPEECH_DOMAINS}
    with capsys.disabled():
        print(f"\ndemo corpus: {len(nodes)} leaves, {len(beyond)} outside speech: "
              f"{sorted(n.rsplit(' > ', 1)[-1] for n in beyond)}")
    assert len(nodes) >= 15 and len(beyond) >= 6


def test_verified_template_items_are_kept_and_corrupted_keys_discarded(demo_run, capsys):
    run, originals, _ = demo_run
    kept = set(run.table("kept").read(columns=["question_id"])["question_id"].to_pylist())
    reasons = {r["item_id"]: r["reason_code"] for r in run.rejects("filter").to_pylist()}
    original_ids = {q["question_id"] for q in originals}
    planted_ids = {"planted_" + i for i in original_ids}
    kept_rate = len(kept & original_ids) / len(original_ids)
    # discarded by verification itself; a planted item dropped only as a duplicate would not count
    discarded = {i for i in planted_ids if reasons.get(i) in ("conflict", "no_winner", "unverified", "ambiguous",
                                                              "judge_discard")}
    discard_rate = len(discarded) / len(planted_ids)
    with capsys.disabled():
        print(f"\nverify on the demo: template items kept {kept_rate:.1%} of {len(original_ids)}; corrupted keys "
              f"discarded {discard_rate:.1%} of {len(planted_ids)}")
    assert kept_rate >= 0.80
    assert discard_rate >= 0.95
    # the count that matters: no wrong-key item may be published, whatever dropped the others
    corpus = set(run.table("corpus").read(columns=["question_id"])["question_id"].to_pylist())
    assert planted_in(kept) == [] and planted_in(corpus) == []


def planted_in(question_ids: set[str]) -> list[str]:
    """The planted wrong-key items among `question_ids` (their ids start with `planted_`, see corrupt())."""
    return sorted(i for i in question_ids if i.startswith("planted_"))


def test_every_question_is_accounted_for_once(demo_run):
    run, _, _ = demo_run
    questions = set(run.table("questions").read(columns=["question_id"])["question_id"].to_pylist())
    verdicts = set(run.table("verdicts").read(columns=["question_id"])["question_id"].to_pylist())
    assert verdicts == questions  # every question got a verdict (no verify rejects with these backends)
    kept = run.table("kept").read(columns=["question_id"])["question_id"].to_pylist()
    rejected = run.rejects("filter")["item_id"].to_pylist()
    assert len(kept) + len(rejected) == len(verdicts)
    assert set(kept) | set(rejected) == verdicts and not set(kept) & set(rejected)


def test_the_corpus_is_self_contained_and_loads_with_datasets(demo_run):
    datasets = pytest.importorskip("datasets")
    run, _, _ = demo_run
    ds = datasets.load_dataset("parquet", data_dir=str(run.local_path / "published" / "corpus-v0"), split="train")
    row = ds[0]
    assert row["answer"] in LETTERS and row["options"][LETTERS.index(row["answer"])] == row["answer_text"]
    assert row["target"].endswith(f"Answer: {row['answer']}")
    assert row["audio"]["array"].size > 0
    lineage = json.loads(row["lineage"])
    assert {"writer", "answerers", "judge", "config_hash"} <= set(lineage)


def test_a_second_run_publishes_nothing_new(demo_run):
    run, _, _ = demo_run
    before = run.table("corpus").version()
    out = run_cli("run", "--config", DEMO, "--out", run.local_path)
    assert run.table("corpus").version() == before
    assert "verify: 0 in" in out
