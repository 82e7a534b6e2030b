"""The buffered writer: results held as Arrow until a commit; a table's keys read once per writer."""

from dataflux.stage import Result
from storage.run_folder import RunFolder
from storage.tables import Table
from storage.writer import BufferedWriter


def clip(i: int) -> dict:
    return {"clip_id": f"c{i}", "source_uri": f"s{i}.flac", "segment_index": 0, "num_segments": 1, "start_s": 0.0,
            "duration_s": 1.0, "sample_rate": 16000, "num_samples": 16000, "orig_sample_rate": 16000,
            "orig_channels": 1, "orig_format": "FLAC", "content_hash": f"h{i}", "audio": b"x", "producer": "t"}


def reject(i: int) -> dict:
    return {"stage": "ingest", "item_id": f"r{i}", "reason_code": "bad", "detail": "d", "source": "", "producer": "t"}


def test_a_writer_reads_each_tables_keys_once_however_many_commits(tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "run")
    run.write("clips", [clip(0)])
    run.write("rejects", [reject(0)])
    reads, original = [], Table.read

    def read(self, version=None, columns=None, where=None):
        if columns == list(self.key):
            reads.append(self.uri.rsplit("/", 1)[-1])
        return original(self, version, columns, where)

    monkeypatch.setattr(Table, "read", read)
    with BufferedWriter(run, "clips", max_rows=4) as out:
        for i in range(10):  # five commits of each table; clip 0 and reject 0 are there already
            out.add(Result([clip(i)], [reject(i)]))
    assert sorted(reads) == ["clips", "rejects"]
    assert out.written == {"rows": 9, "rejects": 9, "commits": 10}
    assert run.table("clips").num_rows() == 10 and run.table("rejects").num_rows() == 10
