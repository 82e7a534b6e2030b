"""Bad arguments to every CLI command: exit 2, one line on stderr that names the argument, no traceback,
and no work started. In-process (`main([...])`): every case is refused before a model, a server or a
Ray runtime starts, so the whole sweep takes a few seconds."""

import json

import pyarrow as pa
import pytest

from dataflux.cli import main
from tests.conftest import DEMO_AUDIO, ROOT

DEMO = ROOT / "examples" / "demo.yaml"
TRAIN = ROOT / "examples" / "train-tiny.yaml"


def dummy(field: pa.Field):
    t = field.type
    if pa.types.is_string(t):
        return "x"
    if pa.types.is_binary(t):
        return b"x"
    if pa.types.is_integer(t):
        return 0
    if pa.types.is_floating(t):
        return 0.0
    if pa.types.is_boolean(t):
        return False
    if pa.types.is_list(t):
        return []
    raise AssertionError(f"no dummy value for {field}")


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """A run folder whose corpus table has one version (0), a file, a fake checkpoint, summaries."""
    from storage.run_folder import RunFolder

    root = tmp_path_factory.mktemp("cli_errors")
    run = RunFolder(root / "run")
    schema = run.table("corpus").schema
    run.write("corpus", [{f.name: dummy(f) for f in schema if not f.nullable}], {"stage": "test"})
    assert run.table("corpus").version() == 0
    (root / "file.txt").write_text("not a folder")
    (root / "checkpoint").mkdir()
    (root / "checkpoint" / "config.json").write_text(json.dumps({"model_type": "eureka_audio"}))
    (root / "summary.json").write_text(json.dumps({"metrics": {"mcq": {"accuracy": 0.5}}}))
    (root / "not_json.json").write_text("{oops")
    (root / "no_metrics.json").write_text(json.dumps({"samples": 3}))
    (root / "bad.yaml").write_text("ingest: {batch_sise: 3}\n")
    (root / "empty").mkdir()
    return {
        "RUN": root / "run",
        "FILE": root / "file.txt",
        "MISSING": root / "missing",
        "CK": root / "checkpoint",
        "SUMMARY": root / "summary.json",
        "NOT_JSON": root / "not_json.json",
        "NO_METRICS": root / "no_metrics.json",
        "BAD_YAML": root / "bad.yaml",
        "OUT": root / "out",
        "EMPTY": root / "empty",
        "DEMO": DEMO,
        "TRAIN": TRAIN,
        "AUDIO": DEMO_AUDIO,
    }


# (argv with PLACEHOLDERS from `paths`, text the one stderr line must contain)
CASES = [
    ([], "COMMAND"),
    (["frobnicate"], "argument COMMAND: invalid choice"),
    # ingest
    (["ingest", "MISSING", "--out", "OUT"], "argument SOURCE: path"),
    (["ingest", "AUDIO", "--out", "OUT", "--config", "MISSING"], "argument --config: file"),
    (["ingest", "AUDIO", "--out", "FILE"], "argument --out:"),
    (["ingest", "AUDIO", "--out", "OUT", "--runner", "spark"], "argument --runner: invalid choice"),
    (["ingest", "AUDIO"], "--out"),
    # run
    (["run", "--config", "MISSING"], "argument --config: file"),
    (["run", "--config", "EMPTY"], "argument --config:"),
    (["run", "--config", "DEMO", "--until", "train", "--out", "OUT"], "argument --until: unknown stage 'train'"),
    (["run", "--config", "DEMO", "--source", "MISSING", "--out", "OUT"], "argument --source: path"),
    (["run", "--config", "BAD_YAML", "--source", "AUDIO", "--out", "OUT"], "ingest.batch_sise: unknown key"),
    # tables
    (["tables", "list", "MISSING"], "argument RUN_DIR: run folder"),
    (["tables", "dump", "RUN"], "argument action: invalid choice"),
    (["tables", "show", "RUN", "--table", "nope"], "argument --table: unknown table 'nope'"),
    (["tables", "show", "RUN", "--table", "questions"], "argument --table: table 'questions' does not exist"),
    (
        ["tables", "show", "RUN", "--table", "corpus", "--version", "9"],
        "argument --version: table 'corpus' has versions 0..0, not 9",
    ),
    (
        ["tables", "show", "RUN", "--table", "corpus", "--version", "-1"],
        "argument --version: table 'corpus' has versions 0..0",
    ),
    (["tables", "show", "RUN", "--table", "corpus", "--version", "x"], "argument --version: invalid int"),
    (["tables", "show", "RUN", "--table", "corpus", "--limit", "-1"], "argument --limit: must be >= 0"),
    # llm serve
    (["llm", "serve", "--port", "0"], "argument --port: must be in 1..65535"),
    (["llm", "serve", "--port", "70000"], "argument --port: must be in 1..65535"),
    (["llm", "serve", "--threads", "0"], "argument --threads: must be >= 1"),
    (["llm", "serve", "--model", "MISSING"], "argument --model: file"),
    (["llm", "serve", "--model", "EMPTY"], "argument --model:"),
    (["llm"], "ACTION"),
    # export
    (["export", "MISSING", "--out", "OUT"], "argument RUN_DIR: run folder"),
    (
        ["export", "RUN", "--table", "corpus", "--version", "9", "--out", "OUT"],
        "argument --version: table 'corpus' has versions 0..0, not 9",
    ),
    (["export", "RUN", "--table", "nope", "--out", "OUT"], "argument --table: unknown table 'nope'"),
    (["export", "RUN", "--table", "clips", "--out", "OUT"], "argument --table: table 'clips' does not exist"),
    (["export", "RUN", "--format", "csv", "--out", "OUT"], "argument --format: invalid choice"),
    (["export", "RUN", "--out", "FILE"], "argument --out:"),
    # server, deploy
    (["server", "--port", "0"], "argument --port: must be in 1..65535"),
    (["server", "--port", "65536"], "argument --port: must be in 1..65535"),
    (["server", "--pool", " "], "argument --pool:"),
    (["deploy", "--prefect-file", "MISSING"], "argument --prefect-file: file"),
    (["deploy", "--prefect-file", "BAD_YAML"], "argument --prefect-file:"),
    (["deploy", "--only", "nope"], "argument --only: unknown deployment(s) nope"),
    (["deploy", "--commit", "main"], "argument --commit: 'main' is not a commit SHA"),
    (["deploy", "--alerts-block", "ops"], "argument --alerts-block: ops: expected BLOCK-TYPE-SLUG/NAME"),
    (["deploy", "--alerts-webhook", "http://x", "--alerts-block", "a/b"], "argument --alerts-webhook:"),
    (["deploy", "--alerts-max-minutes", "0"], "argument --alerts-max-minutes: must be > 0"),
    (["backfill", "--source", "AUDIO", "--run-dir", "OUT"], "argument --from: choose the partitions"),
    (["backfill", "--source", "AUDIO", "--run-dir", "OUT", "--partitions", "a", "--from", "a"],
     "argument --partitions: give --partitions or --from/--to, not both"),
    (["backfill", "--source", "AUDIO", "--run-dir", "OUT", "--from", "2026-12", "--to", "2026-11"],
     "argument --from: 2026-12 sorts after --to 2026-11"),
    (["backfill", "--source", "AUDIO", "--run-dir", "OUT", "--from", "a", "--max-concurrent", "0"],
     "argument --max-concurrent: must be >= 1"),
    (["backfill", "--source", "MISSING", "--run-dir", "OUT", "--from", "a"], "argument --source: folder"),
    (["backfill", "--source", "AUDIO", "--run-dir", "OUT", "--from", "a", "--config", "MISSING"],
     "argument --config: file"),
    (["backfill", "--source", "AUDIO", "--run-dir", "OUT", "--partitions", "2026-11-30"],
     "argument --partitions: partitions not in"),
    (["backfill", "--source", "AUDIO", "--run-dir", "OUT", "--from", "2026-11-01", "--to", "2026-11-30"],
     "argument --from: no partition folder of"),
    (["backfill", "--source", "AUDIO", "--from", "a"], "--run-dir"),
    (["server", "--host", "0.0.0.0"], "argument --host: refusing to bind 0.0.0.0 without an auth string"),
    # maintain, tables diff
    (["maintain", "MISSING"], "argument RUN_DIR: run folder"),
    (["maintain", "RUN", "--retention-hours", "-1"], "argument --retention-hours: must be >= 0"),
    (["tables", "diff", "RUN", "--table", "corpus"], "argument --from: diff needs the older version"),
    (["tables", "diff", "RUN", "--table", "corpus", "--from", "9"],
     "argument --from: table 'corpus' has versions 0..0, not 9"),
    (["tables", "diff", "RUN", "--table", "corpus", "--from", "0", "--to", "3"],
     "argument --to: table 'corpus' has versions 0..0, not 3"),
    # train
    (["train", "--config", "MISSING"], "argument --config: file"),
    (["train", "--config", "TRAIN", "--max-steps", "0"], "argument --max-steps: must be >= 1"),
    (["train", "--config", "TRAIN", "--corpus", "MISSING"], "argument --corpus: run folder"),
    (["train", "--config", "TRAIN", "--corpus", "RUN@9"], "argument --corpus: table 'corpus' has versions 0..0, not 9"),
    (["train", "--config", "TRAIN", "--corpus", "RUN@x"], "argument --corpus:"),
    (["train", "--config", "TRAIN", "--corpus", "EMPTY"], "argument --corpus: table 'corpus' does not exist"),
    (["train", "--config", "TRAIN", "--resume", "MISSING"], "argument --resume: folder"),
    (["train", "--config", "TRAIN", "--resume", "EMPTY"], "argument --resume:"),
    # evaluate
    (["evaluate", "--checkpoint", "MISSING", "--data", "RUN", "--out", "OUT"], "argument --checkpoint: folder"),
    (["evaluate", "--checkpoint", "EMPTY", "--data", "RUN", "--out", "OUT"], "argument --checkpoint:"),
    (["evaluate", "--checkpoint", "CK", "--data", "MISSING.jsonl", "--out", "OUT"], "argument --data: file"),
    (["evaluate", "--checkpoint", "CK", "--data", "MISSING", "--out", "OUT"], "argument --data: run folder"),
    (
        ["evaluate", "--checkpoint", "CK", "--data", "RUN@9", "--out", "OUT"],
        "argument --data: table 'corpus' has versions 0..0",
    ),
    (
        ["evaluate", "--checkpoint", "CK", "--data", "RUN", "--out", "OUT", "--eval-fraction", "0"],
        "argument --eval-fraction: must be in (0, 1)",
    ),
    (
        ["evaluate", "--checkpoint", "CK", "--data", "RUN", "--out", "OUT", "--eval-fraction", "1.5"],
        "argument --eval-fraction: must be in (0, 1)",
    ),
    (
        ["evaluate", "--checkpoint", "CK", "--data", "RUN", "--out", "OUT", "--max-new-tokens", "0"],
        "argument --max-new-tokens: must be >= 1",
    ),
    (["evaluate", "--checkpoint", "CK", "--data", "RUN", "--out", "EMPTY", "--score-only"], "argument --out:"),
    # compare, model info
    (["compare", "MISSING", "SUMMARY"], "argument A: file"),
    (["compare", "NOT_JSON", "SUMMARY"], "argument A:"),
    (["compare", "SUMMARY", "NO_METRICS"], "argument B:"),
    (["model", "info", "nope"], "argument CONFIG:"),
    (["model", "info", "MISSING"], "argument CONFIG:"),
]


def fill(argv: list[str], paths: dict) -> list[str]:
    out = []
    for a in argv:
        head, at, tail = a.partition("@")
        stem, dot, ext = head.partition(".")
        if stem in paths:
            head = str(paths[stem]) + dot + ext
        out.append(head + at + tail)
    return out


@pytest.mark.parametrize("argv,expected", CASES, ids=[" ".join(c[0]) or "no-command" for c in CASES])
def test_bad_argument_exits_2_with_one_line_naming_it(argv, expected, paths, capsys):
    try:
        code = main(fill(argv, paths))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert expected in lines[0], lines[0]
    assert not paths["OUT"].exists(), "a refused command started writing its output"


def test_the_library_says_the_same(paths, tmp_path):
    """The checks behind the CLI's: an export of a version the table lacks, an evaluation of a folder
    that does not exist."""
    from model.evaluate import evaluate
    from storage.export import export_table
    from storage.run_folder import RunFolder

    with pytest.raises(ValueError, match=r"table 'corpus' has versions 0\.\.0, not 9"):
        export_table(RunFolder(paths["RUN"]), "corpus", tmp_path / "x", "hf", version=9)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        evaluate(str(paths["MISSING"]), str(paths["RUN"]), tmp_path / "eval")
