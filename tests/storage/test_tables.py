import pyarrow as pa
import pytest

from storage.run_folder import RunFolder
from storage.schemas import REJECTS, conform
from storage.tables import Table
from tests.peak_memory import child_grew_mb

SCHEMA = pa.schema([pa.field("k", pa.string(), nullable=False), pa.field("v", pa.int64())])


def rows(*pairs):
    return pa.Table.from_pylist([{"k": k, "v": v} for k, v in pairs], schema=SCHEMA)


def test_upsert_is_merge_by_key_and_versions_travel_in_time(tmp_path):
    t = Table(str(tmp_path / "t"), SCHEMA, ("k",))
    assert not t.exists() and t.version() is None and t.read().num_rows == 0
    assert t.upsert(rows(("a", 1), ("b", 2))) == 2
    assert t.upsert(rows(("b", 99), ("c", 3))) == 1  # b exists: not inserted, not updated
    assert t.upsert(rows(("a", 1), ("c", 3))) == 0  # a full re-run adds nothing
    assert t.version() == 1  # the no-op upsert made no commit
    assert t.read().to_pylist() == [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "c", "v": 3}]
    assert t.read(version=0).column("k").to_pylist() == ["a", "b"]
    assert t.num_rows() == 3 and t.num_rows(version=0) == 2
    history = t.history()
    assert [h["version"] for h in history] == [1, 0]
    assert [h["rows_added"] for h in history] == [1, 2]


def test_duplicate_keys_inside_one_batch_keep_the_first(tmp_path):
    t = Table(str(tmp_path / "t"), SCHEMA, ("k",))
    assert t.upsert(rows(("a", 1), ("a", 2), ("b", 3))) == 2
    assert t.read().to_pylist() == [{"k": "a", "v": 1}, {"k": "b", "v": 3}]


def test_commit_metadata_lands_in_history(tmp_path):
    t = Table(str(tmp_path / "t"), SCHEMA, ("k",))
    t.upsert(rows(("a", 1)), metadata={"stage": "ingest"})
    assert t.history()[0]["metadata"] == {"dataflux.stage": "ingest"}


def test_conform_fills_missing_nullable_columns_and_rejects_missing_required():
    table = conform([{"item_id": "x", "stage": "s", "reason_code": "r", "detail": "d", "source": "",
                      "producer": "p", "extra": 1}], REJECTS)
    assert table.schema == REJECTS
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, ValueError)):
        conform([{"item_id": "x"}], REJECTS)


def test_run_folder_counts_and_run_json(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start_invocation("test", {"a": 1})
    run.write("rejects", [{"item_id": "f1", "stage": "ingest", "reason_code": "not_audio", "detail": "",
                           "source": "f1", "producer": "ingest@1"}])
    info = run.end_invocation({"ingest": {"rows_in": 1}}, "completed")
    assert info["counts"] == {"rejects": {"ingest": {"not_audio": 1}}}
    assert info["invocations"][0]["status"] == "completed"
    assert info["invocations"][0]["started_at"] and info["invocations"][0]["ended_at"]
    assert "pyarrow" in info["packages"]
    assert run.tables() == ["rejects"]
    with pytest.raises(KeyError, match="unknown table"):
        run.table("nope")


def test_scan_streams_bounded_chunks_across_commits_with_a_key_filter(tmp_path):
    t = Table(str(tmp_path / "t"), SCHEMA, ("k",))
    assert list(t.scan()) == []
    for start in range(0, 50, 10):  # five commits: the first an append, the rest merges (other string types)
        t.upsert(rows(*[(f"k{i:02d}", i) for i in range(start, start + 10)]))
    chunks = list(t.scan(chunk_rows=7))
    assert [c.num_rows for c in chunks] == [7] * 7 + [1]
    assert all(c.schema == SCHEMA for c in chunks)
    assert sorted(r["v"] for c in chunks for r in c.to_pylist()) == list(range(50))
    wanted = {f"k{i:02d}" for i in (3, 17, 18, 44)}
    picked = list(t.scan(["k"], where=("k", wanted), chunk_rows=3))
    assert [c.num_rows for c in picked] == [3, 1] and {k for c in picked for k in c["k"].to_pylist()} == wanted
    assert [c.num_rows for c in t.scan(version=0, chunk_rows=100)] == [10]


def test_append_streams_chunks_into_one_commit(tmp_path):
    t = Table(str(tmp_path / "t"), SCHEMA, ("k",))
    source = Table(str(tmp_path / "s"), SCHEMA, ("k",))
    source.upsert(rows(*[(f"k{i:02d}", i) for i in range(25)]))
    # the producer reads another table while delta-rs consumes the stream (it must not deadlock)
    assert t.append(source.scan(chunk_rows=4), {"stage": "test"}) == 25
    assert t.version() == 0 and t.read().equals(source.read())
    assert t.history()[0]["metadata"] == {"dataflux.stage": "test"}
    assert t.append(iter([rows(("z", 1))])) == 1 and t.version() == 1


def test_upsert_sees_keys_another_writer_committed_since_its_last_commit(tmp_path):
    a, b = Table(str(tmp_path / "t"), SCHEMA, ("k",)), Table(str(tmp_path / "t"), SCHEMA, ("k",))
    assert a.upsert(rows(("x", 1))) == 1
    assert b.upsert(rows(("y", 2))) == 1  # a's cached keys are now a version behind
    assert a.upsert(rows(("y", 3), ("z", 4))) == 1
    assert a.upsert(rows(("z", 5))) == 0  # its own last commit is known too
    assert a.read().to_pylist() == [{"k": "x", "v": 1}, {"k": "y", "v": 2}, {"k": "z", "v": 4}]


def test_upsert_with_a_key_of_two_columns(tmp_path):
    t = Table(str(tmp_path / "rejects"), REJECTS, ("stage", "item_id"))

    def reject(stage, item):
        return {"stage": stage, "item_id": item, "reason_code": "r", "detail": "d", "source": "", "producer": "p"}

    assert t.upsert(conform([reject("ingest", "a"), reject("verify", "a")], REJECTS)) == 2
    assert t.upsert(conform([reject("ingest", "a"), reject("ingest", "b")], REJECTS)) == 1
    assert Table(t.uri, REJECTS, t.key).upsert(conform([reject("verify", "a"), reject("ingestb", "")], REJECTS)) == 1
    assert t.num_rows() == 4


BIG = """
import sys
import pyarrow as pa
from storage.tables import Table
from tests.peak_memory import grew_mb

schema = pa.schema([pa.field("k", pa.string(), nullable=False), pa.field("audio", pa.binary())])
table = Table(sys.argv[1], schema, ("k",))
print(grew_mb(lambda: table.upsert(pa.table({"k": ["80-new"], "audio": [b"x"]}, schema=schema))))
"""


def test_upsert_reads_only_the_keys_of_the_table(tmp_path):
    """A commit into a table of big rows (clips, with their audio) does not read the rows: 96 MB of
    audio in the table, the upsert's peak memory grows by far less (a Delta MERGE read all of it)."""
    import os

    schema = pa.schema([pa.field("k", pa.string(), nullable=False), pa.field("audio", pa.binary())])
    table = Table(str(tmp_path / "clips"), schema, ("k",))
    for part in range(3):
        audio = [os.urandom(1 << 20) for _ in range(32)]  # incompressible: 32 MB per commit
        keys = [f"{i * 8:02x}-{part}" for i in range(32)]  # every file's key range holds the new key
        table.upsert(pa.table({"k": keys, "audio": audio}, schema=schema))
    grew = child_grew_mb(BIG, table.uri)
    assert grew < 64, f"the upsert's peak private memory grew by {grew} MB"
    assert table.num_rows() == 97
