"""The quality report's "Quality over time" section: one row per published version from the
`corpus_history` table (items, new items, yield per stage, kappa, letter balance, coverage) and the kept
items per taxonomy node across versions. Figures are recounted here from what was written."""

import html
import re
from collections import Counter

from dataflux.stages.publish import run_publish
from storage.run_folder import RunFolder
from tests.storage.fill import NODES, kept_rows, rows
from verifiers.filters import letter_balance

def _table(page: str, table_id: str) -> list[list[str]]:
    body = page.split(f'<table id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return [[html.unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", tr)] for tr in body.split("<tr>")[1:]]


def test_the_report_shows_every_published_version_with_its_figures(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write("clips", rows("clips", 0, 8))
    run.write("annotations", rows("annotations", 0, 6))
    run.write("questions", rows("questions", 0, 10))
    run.write("kept", kept_rows(0, 4))
    run_publish(run)  # corpus v0: 4 items, letters A B C D, 2 per node
    run.write("annotations", rows("annotations", 6, 2))
    run.write("kept", kept_rows(4, 3))
    run_publish(run)  # corpus v1: 7 items, 3 new (A B C), nodes 4 and 3
    first = (run.local_path / "published" / "corpus-v0" / "report.html").read_text()
    page = (run.local_path / "published" / "corpus-v1" / "report.html").read_text()
    assert "<h2 id=\"quality-over-time\">Quality over time</h2>" in page
    assert len(_table(first, "versions")) == 2  # header + v0: the report of v0 knew only v0

    header, *versions = _table(page, "versions")
    assert len(versions) == 2
    shown = [dict(zip(header, v)) for v in versions]
    assert [(v["version"], v["items"], v["new items"]) for v in shown] == [("0", "4", "4"), ("1", "7", "3")]
    assert [v["letters"] for v in shown] == ["A 1, B 1, C 1, D 1", "A 2, B 2, C 2, D 1"]
    assert [v["nodes covered"].split("/")[0] for v in shown] == ["0", "0"]  # NODES are not taxonomy leaves
    # yield per stage as it was at each publish: 6 then 8 of 8 clips annotated, 10 questions on them
    assert [v["yield clips->annotated"] for v in shown] == ["0.75", "1.0"]
    assert [v["yield annotated->questions"] for v in shown] == [str(round(10 / 6, 4)), "1.25"]
    assert [v["yield questions->verified"] for v in shown] == ["0.0", "0.0"]
    assert [v["yield verified->kept"] for v in shown] == ["-", "-"]  # nothing verified: no yield
    assert [v["kappa"] for v in shown] == ["-", "-"]  # no two answerers
    expected_p = [letter_balance(Counter("ABCD"))["chi2_p"], letter_balance(Counter("ABCDABC"))["chi2_p"]]
    assert [float(v["letters chi2 p"]) for v in shown] == expected_p and expected_p[0] != expected_p[1]

    node_header, *per_node = _table(page, "nodes")
    assert node_header == ["node", "v0", "v1"]
    assert sorted(per_node) == sorted([[NODES[0], "2", "4"], [NODES[1], "2", "3"]])
