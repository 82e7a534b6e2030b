import json
import os

import fsspec
import pandas as pd
import pytest

from dataflux.sources import list_source


def touch(path, data=b"RIFF"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_directory_walk_is_recursive_sorted_and_reports_what_it_cannot_use(tmp_path):
    root = tmp_path / "root"
    touch(root / "b.wav")
    touch(root / "sub" / "a.flac")
    touch(root / "notes.txt")
    outside = touch(tmp_path / "secret.wav")
    os.symlink(outside, root / "escape.wav")
    os.symlink(tmp_path, root / "escape_dir")
    os.symlink(root / "sub", root / "inside_link")  # stays inside the root: followed
    items = {i["uri"]: i for i in list_source(root)}
    assert [i["uri"] for i in list_source(root)] == sorted(items)
    assert items[str(root / "escape.wav")]["error_code"] == "path_escape"
    assert items[str(root / "escape_dir")]["error_code"] == "path_escape"
    assert items[str(root / "notes.txt")]["error_code"] == "unsupported_extension"
    assert items[str(root / "b.wav")]["error_code"] is None
    assert items[str(root / "sub" / "a.flac")]["error_code"] is None
    assert str(outside) not in items


def test_symlink_loops_terminate(tmp_path):
    root = tmp_path / "root"
    touch(root / "a.wav")
    os.symlink(root, root / "loop")
    assert [i["uri"] for i in list_source(root)] == [str(root / "a.wav")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_manifest_with_metadata_and_escaping_paths(tmp_path, fmt):
    root = tmp_path / "data"
    touch(root / "x.wav")
    touch(tmp_path / "outside.wav")
    df = pd.DataFrame({"path": ["x.wav", "../outside.wav", str(tmp_path / "outside.wav")],
                       "speaker": ["s1", "s2", "s3"]})
    manifest = root / f"manifest.{fmt}"
    {"csv": lambda: df.to_csv(manifest, index=False),
     "jsonl": lambda: df.to_json(manifest, orient="records", lines=True),
     "parquet": lambda: df.to_parquet(manifest)}[fmt]()
    items = list_source(manifest)
    assert len(items) == 3
    good = [i for i in items if i["error_code"] is None]
    assert [i["uri"] for i in good] == [str(root / "x.wav")]
    assert json.loads(good[0]["metadata"]) == {"speaker": "s1"}
    assert sorted(i["error_code"] for i in items if i["error_code"]) == ["path_escape", "path_escape"]


def test_manifest_without_a_path_column_is_a_clear_error(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("name\nx.wav\n")
    with pytest.raises(ValueError, match="needs one of the columns"):
        list_source(manifest)


def test_fsspec_url_source(tmp_path):
    fs = fsspec.filesystem("memory")
    fs.pipe("/dfx-test/a.wav", b"RIFF")
    fs.pipe("/dfx-test/deep/b.mp3", b"ID3")
    uris = [i["uri"] for i in list_source("memory://dfx-test")]
    assert uris == ["memory://dfx-test/a.wav", "memory://dfx-test/deep/b.mp3"]


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a directory"):
        list_source(tmp_path / "nope")
