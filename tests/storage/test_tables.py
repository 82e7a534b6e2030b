import pyarrow as pa
import pytest

from storage.run_folder import RunFolder
from storage.schemas import REJECTS, conform
from storage.tables import Table

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
