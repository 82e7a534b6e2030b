"""Other engines read the run folder's tables: Polars through Delta (`read_delta`), DuckDB through the
snapshot's file list (its own Delta extension downloads itself at run time) or through Arrow; and an hf
export is a dataset folder `datasets.load_dataset` takes as is, with its card."""

import duckdb
import polars as pl
import pytest

from storage.export import export_table, size_category
from storage.run_folder import RunFolder
from storage.schemas import TABLES
from tests.storage.fill import fill

READ = ("clips", "annotations", "corpus")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return fill(RunFolder(tmp_path_factory.mktemp("outside") / "run"), commits=3, per_commit=4)


def _sorted_rows(table, key):
    return sorted(table.to_pylist(), key=lambda r: tuple(r[k] for k in key))


@pytest.mark.parametrize("name", READ)
def test_polars_reads_every_version_as_we_do(run, name):
    table = run.table(name)
    assert len(table.files()) == 3  # three commits, three files: the readers must union them
    for version in (None, 0, 1):
        ours = table.read(version=version)
        theirs = pl.read_delta(table.uri, version=version).to_arrow()
        assert theirs.column_names == ours.column_names
        assert _sorted_rows(theirs, table.key) == _sorted_rows(ours, table.key), (name, version)
    assert pl.read_delta(table.uri).height == 12 and pl.read_delta(table.uri, version=0).height == 4


@pytest.mark.parametrize("name", READ)
def test_duckdb_reads_the_snapshot_file_list_and_arrow(run, name):
    table = run.table(name)
    ours = table.read()
    con = duckdb.connect()
    from_files = con.sql(f"SELECT * FROM read_parquet({table.files()!r})").to_arrow_table()
    assert _sorted_rows(from_files, table.key) == _sorted_rows(ours, table.key)
    old = con.sql(f"SELECT count(*) FROM read_parquet({table.files(version=0)!r})").fetchall()[0][0]
    assert old == 4  # an older version is its own file list
    arrow_rows = ours  # noqa: F841 - DuckDB finds the Arrow table by its Python name
    counted = con.sql(f"SELECT count(DISTINCT {table.key[0]}) FROM arrow_rows").fetchall()[0][0]
    assert counted == ours.num_rows == 12


def test_every_registered_table_reads_in_polars_and_duckdb(run):
    for name in TABLES:
        table = run.table(name)
        assert pl.read_delta(table.uri).height == table.num_rows() == 12, name
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet({table.files()!r})").fetchall()[0][0] == 12, name


def test_hf_export_folder_loads_with_its_card(run, tmp_path):
    datasets = pytest.importorskip("datasets")
    from huggingface_hub import DatasetCard

    out = tmp_path / "hf"
    info = export_table(run, "corpus", out, "hf", rows_per_shard=5, license="cc-by-4.0")
    assert info["shards"] == 3 and (out / "export.json").exists()  # export.json is beside the data, not data
    builder = datasets.load_dataset_builder(str(out))
    assert builder.info.splits["train"].num_examples == 12  # from the card, before any data is read
    assert isinstance(builder.info.features["audio"], datasets.Audio)
    ds = datasets.load_dataset(str(out), split="train")  # the folder itself, no data_files
    assert ds.num_rows == 12
    assert sorted(ds["question_id"]) == sorted(run.table("corpus").read(columns=["question_id"])["question_id"]
                                                .to_pylist())
    assert ds[0]["audio"] is not None and isinstance(ds.features["audio"], datasets.Audio)
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0"
    assert card.data.size_categories == ["n<1K"]
    assert "question-answering" in card.data.task_categories
    assert card.data.configs[0]["data_files"][0]["path"] == "data/train-*"
    assert [f["name"] for f in card.data.dataset_info["features"]] == TABLES["corpus"][0].names


def test_size_categories_follow_the_hub_names():
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 2_500_000)] == \
        ["n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]
