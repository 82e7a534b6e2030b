"""Publish joins each kept item with its clip's audio while the audio streams past, holding the kept
rows of a group of clips at a time, not the kept table: the corpus is the same whatever the group size,
and the flow process's memory does not grow with the kept table."""

import os

import pyarrow as pa
import pyarrow.compute as pc

from dataflux.stages import publish
from dataflux.stages.publish import kept_groups, run_publish
from storage.run_folder import RunFolder
from tests.peak_memory import child_grew_mb
from tests.storage.fill import kept_rows, rows


def _kept(start: int, per_clip: list[int]) -> list[dict]:
    """Items for clips clip_id-00000.. : per_clip[i] items on clip i."""
    out, n = [], start
    for clip, count in enumerate(per_clip):
        for item in kept_rows(n, count):
            item["clip_id"] = f"clip_id-{clip:05d}"
            out.append(item)
        n += count
    return out


def test_groups_are_runs_of_clips_in_audio_order_of_about_the_rows_asked():
    per_clip = [3, 0, 1, 5, 2, 2, 1, 4]
    pending = pa.table({"clip_id": [f"c{i}" for i, k in enumerate(per_clip) for _ in range(k)]})
    order = pa.array([f"c{i}" for i in [7, 6, 5, 4, 3, 2, 0]])  # c1 has no pending item: not in the order
    groups = kept_groups(pending, order, rows=4)
    assert groups["clip_id"].to_pylist() == order.to_pylist()
    # items before each clip, in that order: 0, 4, 5, 7, 9, 14, 15 -> groups of 4 rows: 0 1 1 1 2 3 3
    assert groups["group"].to_pylist() == [0, 1, 1, 1, 2, 3, 3]


def test_the_corpus_is_the_kept_items_with_their_audio_whatever_the_group_size(tmp_path, monkeypatch):
    per_clip = [(i * 7) % 4 for i in range(30)]  # 0 to 3 items per clip
    corpora = []
    for group_rows in (1 << 14, 5, 1):
        monkeypatch.setattr(publish, "GROUP_ROWS", group_rows)
        run = RunFolder(tmp_path / f"run-{group_rows}")
        for start in (0, 12, 24):  # three commits: the audio comes in three files
            run.write("clips", rows("clips", start, 12 if start < 24 else 6))
        items = _kept(0, per_clip)
        run.write("kept", items[:20])
        run_publish(run)  # v0: the first 20 items
        run.write("kept", items[20:])
        run_publish(run)  # v1: the rest
        corpus = run.table("corpus")
        assert [corpus.num_rows(v) for v in (0, 1)] == [20, len(items)]
        table = corpus.read()
        audio = dict(zip(*run.table("clips").read(columns=["clip_id", "audio"]).to_pydict().values()))
        assert all(audio[c] == a for c, a in zip(table["clip_id"].to_pylist(), table["audio"].to_pylist()))
        assert sorted(pc.unique(table["published_version"]).to_pylist()) == [0, 1]
        corpora.append(table.drop_columns(["audio"]).sort_by("question_id").to_pylist())
        assert [r["question_id"] for r in corpora[-1]] == sorted(i["question_id"] for i in items)
    assert corpora[0] == corpora[1] == corpora[2]


PROCESS = """
import sys
import dataflux.stages.publish as publish
from dataflux.runners.base import StageStats
from dataflux.step import Context
from storage.run_folder import RunFolder
from tests.peak_memory import grew_mb

publish.GROUP_ROWS, publish.AUDIO_CLIPS = int(sys.argv[2]), int(sys.argv[3])
step, ctx = publish.Publish(), Context(RunFolder(sys.argv[1]))
pending = step.candidates(ctx)
print(grew_mb(lambda: step.process(ctx, pending, StageStats("publish"), None)))
"""


def test_publish_holds_a_group_of_kept_rows_not_the_kept_table(tmp_path):
    """160 MB of kept text (40k items of 4 KB on 4000 clips, in 20 commits): publishing them in groups of
    2000 items, the audio of 100 clips at a time, grows the process's peak private memory by less than
    the table (holding the table, as publish did, grew it by 4 times the table)."""
    run = RunFolder(tmp_path / "run")
    run.write("clips", rows("clips", 0, 4000))
    for part in range(20):
        items = _kept(part * 2000, [10 if part * 200 <= c < (part + 1) * 200 else 0 for c in range(4000)])
        for item in items:
            item["reasoning"] = os.urandom(2000).hex()  # 4 KB that does not compress
        run.write("kept", items)
    grew = child_grew_mb(PROCESS, str(run.local_path), "2000", "100")
    assert run.table("corpus").num_rows() == 40000
    assert grew < 160, f"publish's peak private memory grew by {grew} MB for 160 MB of kept rows"
