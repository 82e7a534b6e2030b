"""The published data card (README.md), summary.json and report.html of the demo corpus say what the
tables say: every figure is recounted here from the tables (not through `report.summarize`) and
compared with the text."""

import html
import json
import re
from collections import Counter

import pyarrow.parquet as pq
import pytest

from dataflux.sources import list_source
from tests.conftest import DEMO_AUDIO


@pytest.fixture(scope="module")
def published(demo_published):
    run = demo_published[0]
    corpus = run.table("corpus")
    version = corpus.version()
    folder = run.local_path / "published" / f"corpus-v{version}"
    return run, version, folder, corpus.read(version=version, columns=["question_id", "node_path", "answer"])


def md_table(card: str, header: str) -> dict[str, str]:
    """The rows of the Markdown table under `header` ("| a | b |"): first cell -> the rest."""
    lines = card.split(header + "\n", 1)[1].splitlines()[1:]  # skip the |---| line
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[" | ".join(cells[:-1])] = cells[-1]
    return rows


def test_card_and_summary_figures_equal_the_tables(published):
    run, version, folder, corpus = published
    card = (folder / "README.md").read_text()
    summary = json.loads((folder / "summary.json").read_text())
    assert card.startswith(f"# DataFlux corpus, version {version}\n") and summary["corpus_version"] == version

    def rows(name):
        return run.table(name).num_rows()

    clips = run.table("clips").read(columns=["source_uri", "duration_s"])
    funnel = {
        "inputs": len(list_source(DEMO_AUDIO)),
        "clips": rows("clips"),
        "annotated": rows("annotations"),
        "questions": rows("questions"),
        "verified": rows("verdicts"),
        "kept": rows("kept"),
        "corpus": corpus.num_rows,
    }
    assert funnel["corpus"] > 0 and funnel["corpus"] < funnel["questions"]
    assert summary["funnel"] == funnel
    assert md_table(card, "| stage | rows |") == {k: str(v) for k, v in funnel.items()}

    hours = round(sum(clips["duration_s"].to_pylist()) / 3600, 4)
    sources = len(set(clips["source_uri"].to_pylist()))
    assert summary["audio_hours"] == hours and summary["num_sources"] == sources
    assert f"{sources} source files, {hours} h of audio" in card

    per_node = Counter(corpus["node_path"].to_pylist())
    assert summary["taxonomy_coverage"]["kept_per_node"] == dict(per_node)
    assert md_table(card, "| node | kept |") == {k: str(v) for k, v in per_node.items()}
    covered = summary["taxonomy_coverage"]
    assert covered["nodes_covered"] == len(per_node)
    assert f"{len(per_node)} of {covered['nodes_total']} leaves have items." in card

    letters = Counter(corpus["answer"].to_pylist())
    assert {k: v for k, v in summary["answer_letters"]["counts"].items() if v} == dict(letters)
    line = card.split("## Answer letters\n", 1)[1].splitlines()[0]
    assert {k: int(v) for k, v in re.findall(r"([A-D]): (\d+)", line) if int(v)} == dict(letters)

    rejects = Counter((r["stage"], r["reason_code"]) for r in run.rejects().to_pylist())
    assert md_table(card, "| stage | reason | count |") == {f"{s} | {r}": str(n) for (s, r), n in rejects.items()}
    assert {(s, r): n for s, c in summary["rejects"].items() for r, n in c.items()} == dict(rejects)

    by_round = {
        name: Counter(run.table(name).read(columns=["round"])["round"].to_pylist())
        for name in ("questions", "verdicts", "kept")
    }
    expected = {
        str(r): {"questions": n, "verified": by_round["verdicts"][r], "kept": by_round["kept"][r]}
        for r, n in by_round["questions"].items()
    }
    assert {r: {k: v[k] for k in ("questions", "verified", "kept")} for r, v in summary["rounds"].items()} == expected
    card_rounds = md_table(card, "| round | questions | verified | kept | yield |")  # the yield is the last cell
    assert set(card_rounds) == {f"{r} | {v['questions']} | {v['verified']} | {v['kept']}" for r, v in expected.items()}


def test_report_html_and_export_match(published):
    run, version, folder, corpus = published
    page = (folder / "report.html").read_text()
    assert f"corpus version {version}</h1>" in page
    card = re.search(r"<pre>(.*)</pre>", page, re.S).group(1)
    assert html.unescape(card) == (folder / "README.md").read_text()
    plots = re.findall(r'<img src="plots/([^"]+)"', page)
    assert {"funnel.png", "nodes.png", "rejects.png"} <= set(plots)
    assert all((folder / "plots" / p).stat().st_size > 1000 for p in plots)
    shards = sorted((folder / "data").glob("*.parquet"))
    exported = [q for s in shards for q in pq.read_table(s, columns=["question_id"])["question_id"].to_pylist()]
    assert sorted(exported) == sorted(corpus["question_id"].to_pylist())
