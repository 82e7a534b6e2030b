import json

import numpy as np
import pytest

from dataflux.audio import decode_flac
from dataflux.runners import LocalRunner
from dataflux.stages.ingest import run_ingest
from storage.export import export_swift, export_table, with_audio
from storage.run_folder import RunFolder
from tests.conftest import DEMO_AUDIO


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run = RunFolder(tmp_path_factory.mktemp("export") / "run")
    run_ingest(str(DEMO_AUDIO), run, LocalRunner())
    return run


def test_hf_export_loads_with_datasets_and_decodes_audio(demo_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    info = export_table(demo_run, "clips", tmp_path / "hf", "hf", rows_per_shard=20)
    assert info["shards"] == 3 and info["version"] == 0
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "hf"), split="train")
    clips = demo_run.table("clips").read()
    assert ds.num_rows == clips.num_rows
    assert isinstance(ds.features["audio"], datasets.Audio)
    stored = dict(zip(clips["clip_id"].to_pylist(), clips["audio"].to_pylist()))
    assert sorted(ds["clip_id"]) == sorted(stored)
    for row in ds:  # every clip decodes, through datasets, to exactly the samples of its stored FLAC
        decoded = row["audio"]
        samples = decoded["array"] if isinstance(decoded, dict) else decoded.get_all_samples().data.numpy()[0]
        rate = decoded["sampling_rate"] if isinstance(decoded, dict) else decoded.get_all_samples().sample_rate
        want, want_rate = decode_flac(stored[row["clip_id"]])
        assert rate == want_rate == 16000
        np.testing.assert_array_equal(np.asarray(samples, dtype=np.float32), want, err_msg=row["clip_id"])


def test_swift_export_writes_messages_and_audio(demo_run, tmp_path):
    clips = demo_run.table("clips").read(columns=["clip_id"]).slice(0, 3)
    corpus = clips.append_column("question", [["Who is speaking?"] * 3]) \
                  .append_column("options", [[["a man", "a woman", "a child", "nobody"]] * 3]) \
                  .append_column("target", [["A"] * 3])
    info = export_swift(with_audio(demo_run, corpus), tmp_path / "swift")
    lines = [json.loads(l) for l in (tmp_path / "swift" / "data.jsonl").read_text().splitlines()]
    assert info["rows"] == len(lines) == 3
    first = lines[0]
    assert first["messages"][0] == {"role": "user",
                                    "content": "<audio>Who is speaking?\nA. a man\nB. a woman\nC. a child\nD. nobody"}
    assert first["messages"][1] == {"role": "assistant", "content": "A"}
    assert (tmp_path / "swift" / first["audios"][0]).read_bytes()[:4] == b"fLaC"


def test_swift_export_of_a_table_without_targets_is_a_clear_error(demo_run, tmp_path):
    with pytest.raises(ValueError, match="needs a table with a `question`"):
        export_table(demo_run, "clips", tmp_path / "x", "swift")


def test_export_of_a_missing_table_names_the_existing_ones(demo_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="it has: clips"):
        export_table(demo_run, "rejects", tmp_path / "x", "hf")
