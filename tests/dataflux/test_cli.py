import json
import subprocess
import sys

import pytest

from dataflux.cli import main
from tests.conftest import DEMO_AUDIO, ROOT


def dataflux(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dataflux.cli", *map(str, args)], capture_output=True,
                          text=True, **kw)


@pytest.mark.parametrize("command", [[], ["ingest"], ["run"], ["tables"], ["export"], ["llm", "serve"], ["server"],
                                     ["deploy"], ["train"], ["evaluate"], ["compare"], ["model", "info"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: dataflux" in capsys.readouterr().out


def test_bad_arguments_give_clear_errors(tmp_path):
    r = dataflux("ingest", tmp_path / "missing", "--out", tmp_path / "run")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = dataflux("run", "--config", tmp_path / "nope.yaml")
    assert r.returncode == 2 and "argument --config: file" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest: {batch_sise: 3}\n")
    r = dataflux("run", "--config", bad, "--source", DEMO_AUDIO, "--out", tmp_path / "r")
    assert r.returncode == 2 and f"{bad}: ingest.batch_sise: unknown key" in r.stderr
    r = dataflux("run", "--config", ROOT / "examples" / "demo.yaml", "--until", "train", "--out", tmp_path / "r")
    assert r.returncode == 2 and "unknown stage 'train'" in r.stderr
    r = dataflux("tables", "list", tmp_path / "no_run")
    assert r.returncode == 2 and "run folder" in r.stderr
    r = dataflux("ingest", DEMO_AUDIO, "--out", tmp_path / "r", "--runner", "spark")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_run_tables_and_export_end_to_end(tmp_path, mixed_source):
    run_dir = tmp_path / "run"
    r = dataflux("run", "--config", ROOT / "examples" / "demo.yaml", "--source", mixed_source, "--out", run_dir,
                 "--until", "ingest")
    assert r.returncode == 0, r.stderr
    assert f"run folder: {run_dir}" in r.stdout and "ingest: 60 in, 51 out, 10 rejected" in r.stdout
    r = dataflux("ingest", mixed_source, "--out", run_dir, "--strict")
    assert r.returncode == 0 and "0 in" in r.stdout  # nothing new, nothing rejected in this invocation
    r = dataflux("ingest", mixed_source, "--out", tmp_path / "strict", "--strict")
    assert r.returncode == 3

    listed = dataflux("tables", "list", run_dir).stdout.splitlines()
    assert listed == ["clips\tversion 0\t51 rows", "rejects\tversion 0\t10 rows"]
    shown = dataflux("tables", "show", run_dir, "--table", "rejects", "--limit", "3").stdout
    assert "rejects version 0: 10 rows" in shown and "reason_code" in shown
    history = [json.loads(line) for line in dataflux("tables", "history", run_dir).stdout.splitlines()]
    assert history[0]["version"] == 0 and history[0]["rows_added"] == 51

    r = dataflux("export", run_dir, "--table", "clips", "--version", "0", "--format", "hf", "--out", tmp_path / "hf")
    assert r.returncode == 0, r.stderr
    assert "exported 51 rows of clips version 0" in r.stdout
    assert list((tmp_path / "hf" / "data").glob("*.parquet"))

    info = json.loads((run_dir / "run.json").read_text())
    assert [i["status"] for i in info["invocations"]] == ["completed", "completed"]
    assert info["counts"]["clips"] == 51
    assert info["invocations"][0]["config"]["config_hash"]
