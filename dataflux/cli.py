"""The `dataflux` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from storage.run_folder import RunFolderBusy
from storage.tables import StorageError

EXIT_BAD_ARGS = 2
EXIT_STRICT = 3
EXIT_STORAGE = 4  # a table or run.json could not be written


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError, RunFolderBusy) as e:  # bad paths, configs, names: no traceback
        print(f"dataflux: error: {e}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except StorageError as e:  # disk full, read-only or unwritable run folder: nothing half-written
        print(f"dataflux: error: {e}", file=sys.stderr)
        return EXIT_STORAGE
    except OSError as e:  # other writes (exports, reports) on a full or read-only disk
        print(f"dataflux: error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return EXIT_STORAGE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dataflux", description="Turn raw audio into verified instruction data.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", help="decode, validate and store a source's audio as clips")
    ingest.add_argument("source", help="a directory, a manifest (.csv/.jsonl/.parquet) or an fsspec URL")
    ingest.add_argument("--out", required=True, help="run folder (local path or object-store URL)")
    ingest.add_argument("--config", help="YAML config (its ingest section applies)")
    _runner_args(ingest)
    ingest.set_defaults(func=cmd_ingest)

    run = sub.add_parser("run", help="run the pipeline stages into a run folder")
    run.add_argument("--config", required=True, help="YAML config, e.g. examples/demo.yaml")
    run.add_argument("--source", help="overrides the config's source")
    run.add_argument("--out", help="overrides the config's run folder")
    run.add_argument("--until", help="last stage to run (default: all)")
    _runner_args(run)
    run.set_defaults(func=cmd_run)

    tables = sub.add_parser("tables", help="inspect the tables of a run folder")
    tables.add_argument("action", choices=["list", "show", "history"])
    tables.add_argument("run_dir")
    tables.add_argument("--table", default="clips", help="table for show/history (default: clips)")
    tables.add_argument("--version", type=int, help="table version for show (default: latest)")
    tables.add_argument("--limit", type=int, default=10, help="rows for show (default: 10)")
    tables.set_defaults(func=cmd_tables)

    llm = sub.add_parser("llm", help="the embedded LLM server")
    llm_sub = llm.add_subparsers(dest="llm_command", required=True, metavar="ACTION")
    serve = llm_sub.add_parser("serve", help="serve SmolLM2-135M-Instruct (bundled GGUF) with llama.cpp's "
                                              "OpenAI-compatible server on loopback until interrupted")
    serve.add_argument("--port", type=int, help="default: a free port")
    serve.add_argument("--model", help="a GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    serve.add_argument("--threads", type=int, default=2)
    serve.set_defaults(func=cmd_llm_serve)

    export = sub.add_parser("export", help="export a table version for trainers")
    export.add_argument("run_dir")
    export.add_argument("--table", default="corpus")
    export.add_argument("--version", type=int, help="table version (default: latest)")
    export.add_argument("--format", choices=["hf", "swift"], default="hf")
    export.add_argument("--out", required=True)
    export.set_defaults(func=cmd_export)
    server = sub.add_parser("server", help="start a local Prefect server (SQLite, 127.0.0.1) and a process worker")
    server.add_argument("--port", type=int, default=4200)
    server.add_argument("--pool", default="dataflux", help="work pool the worker serves")
    server.add_argument("--no-worker", action="store_true")
    server.set_defaults(func=cmd_server)
    deploy = sub.add_parser("deploy", help="register prefect.yaml's deployments, the work pool and the LLM quotas")
    deploy.add_argument("--prefect-file", default=None, help="prefect.yaml (the repository's by default)")
    deploy.add_argument("--only", nargs="*", help="deployment names to register (all by default)")
    deploy.set_defaults(func=cmd_deploy)
    train = sub.add_parser("train", help="fine-tune Eureka-Audio on corpus versions")
    train.add_argument("--config", required=True, help="a training YAML (examples/train-tiny.yaml)")
    train.add_argument("--corpus", action="append", help="RUN_DIR[@VERSION]; repeat to mix (overrides the config's)")
    train.add_argument("--out", help="output folder (overrides output_dir)")
    train.add_argument("--max-steps", type=int)
    train.add_argument("--resume", help="a checkpoint folder to resume from")
    train.set_defaults(func=cmd_train)
    evaluate = sub.add_parser("evaluate", help="evaluate a checkpoint; writes predictions, scores, summary, report")
    evaluate.add_argument("--checkpoint", required=True, help="an Eureka-Audio checkpoint folder")
    evaluate.add_argument("--data", required=True, help="RUN_DIR[@VERSION] (held-out split) or a .jsonl/.parquet file")
    evaluate.add_argument("--out", required=True)
    evaluate.add_argument("--max-new-tokens", type=int, help="cap for every task (defaults: mcq 512, asr 448, label 32)")
    evaluate.add_argument("--eval-fraction", type=float, default=0.1)
    evaluate.add_argument("--score-only", action="store_true", help="re-score existing predictions")
    evaluate.set_defaults(func=cmd_evaluate)
    compare = sub.add_parser("compare", help="compare two evaluation summaries (B against A)")
    compare.add_argument("a")
    compare.add_argument("b")
    compare.set_defaults(func=cmd_compare)
    model = sub.add_parser("model", help="Eureka-Audio model utilities")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")
    info = model_sub.add_parser("info", help="parameter counts of a model config, without allocating weights")
    info.add_argument("config", help="a config JSON, a checkpoint folder, or a preset: full, tiny")
    info.set_defaults(func=cmd_model_info)
    return p


def _runner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runner", choices=["local", "ray"], help="where stages run (default: local)")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start one locally)")
    p.add_argument("--strict", action="store_true", help=f"exit with {EXIT_STRICT} if any input was rejected")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_ingest(args) -> int:
    from dataflux.config import load_config
    from dataflux.pipeline import with_overrides

    config = with_overrides(load_config(args.config), source=args.source, out=args.out, runner=args.runner,
                            ray_address=args.ray_address)
    return _run(config, "ingest", args, command="ingest")


def cmd_run(args) -> int:
    from dataflux.config import load_config
    from dataflux.pipeline import with_overrides

    config = with_overrides(load_config(args.config), source=args.source, out=args.out, runner=args.runner,
                            ray_address=args.ray_address)
    return _run(config, args.until, args, command="run")


def cmd_server(args) -> int:
    import time

    from flows.server import LocalPrefect

    with LocalPrefect(port=args.port, pool=args.pool, worker=not args.no_worker) as prefect:
        print(f"Prefect server: {prefect.ui_url} (API {prefect.api_url}); worker on pool {args.pool!r}"
              f"{' not started' if args.no_worker else ''}; logs in {prefect.log_dir}")
        print(f"in another shell: export PREFECT_API_URL={prefect.api_url}; dataflux deploy. Ctrl-C stops both.",
              flush=True)
        try:
            while all(p.poll() is None for p in prefect.procs):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


def cmd_deploy(args) -> int:
    from flows.deploy import ROOT, deploy

    for d in deploy(Path(args.prefect_file) if args.prefect_file else ROOT / "prefect.yaml", args.only):
        print(f"deployed {d['name']} ({d['id']}): {d['schedules']} schedule(s), {d['triggers']} trigger(s)")
    return 0


def corpus_specs(values: list[str] | None):
    from model.data import CorpusSpec

    specs = []
    for value in values or []:
        run_dir, _, version = value.partition("@")
        specs.append(CorpusSpec(run_dir, int(version) if version else None))
    return specs or None


def cmd_train(args) -> int:
    from model.train import load_train_config, train

    config = load_train_config(args.config, output_dir=args.out, max_steps=args.max_steps)
    summary = train(config, corpus_specs(args.corpus), args.resume)
    print(f"trained {summary['steps']} steps ({summary['samples_seen']} samples, {summary['skipped_too_long']} "
          f"skipped as too long); checkpoint: {summary['checkpoint']}")
    return 0


def cmd_evaluate(args) -> int:
    from model.evaluate import DECODE, EvalConfig, evaluate

    caps = {task: args.max_new_tokens for task in DECODE} if args.max_new_tokens else {}
    summary = evaluate(args.checkpoint, args.data, args.out, EvalConfig(max_new_tokens=caps,
                                                                         eval_fraction=args.eval_fraction),
                       score_only=args.score_only)
    print(json.dumps(summary["metrics"], indent=2))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def cmd_compare(args) -> int:
    from model.scoring import compare

    result = compare(json.loads(Path(args.a).read_text()), json.loads(Path(args.b).read_text()))
    for row in result["metrics"]:
        print(f"{row['metric']}: {row['a']} -> {row['b']} ({row['delta']:+}) {'better' if row['b_better'] else 'tie' if row['tie'] else 'worse'}")
    print(f"verdict: B is {result['verdict']} (decided by {result['decided_by']})")
    return 0


def cmd_model_info(args) -> int:
    from model.info import describe, load_config, parameter_counts

    print(describe(parameter_counts(load_config(args.config))))
    return 0


def _run(config, until, args, command: str) -> int:
    from dataflux.pipeline import run_pipeline

    if config.source and "://" not in config.source and not Path(config.source).exists():
        raise FileNotFoundError(f"source {config.source} does not exist")
    info = run_pipeline(config, until=until, command=command,
                        progress=None if args.no_progress else _progress_bars)
    stages = info["invocations"][-1]["stages"]
    print(f"run folder: {info['run_dir']}")
    for name, s in stages.items():
        reasons = ", ".join(f"{k}={v}" for k, v in s["rejected"].items()) or "none"
        print(f"  {name}: {s['rows_in']} in, {s['rows_out']} out, {s['rejected_total']} rejected ({reasons}), "
              f"{s['skipped']} already done, {s['seconds']:.1f}s")
    print("  tables: " + ", ".join(f"{k}={v}" for k, v in info["counts"].items() if k != "rejects"))
    published = stages.get("publish", {})
    if published.get("corpus_uri"):
        funnel = " -> ".join(f"{k} {v}" for k, v in info["counts"].items()
                             if k in ("clips", "annotations", "questions", "verdicts", "kept", "corpus"))
        print(f"corpus: {published['corpus_uri']} version {published['corpus_version']} "
              f"({published['corpus_rows']} items)")
        print(f"  export, data card and report: {published['export']}")
        print(f"  funnel: {funnel}")
    rejected = sum(s["rejected_total"] for s in stages.values())
    return EXIT_STRICT if args.strict and rejected else 0


def _progress_bars(stage: str):
    from tqdm import tqdm

    bar = tqdm(desc=stage, unit="item", total=0, leave=False, disable=None)

    def on_total(total: int) -> None:
        bar.reset(total=total)

    def on_progress(n: int) -> None:
        bar.update(n)
        if bar.total and bar.n >= bar.total:
            bar.close()

    return on_progress, on_total


def cmd_tables(args) -> int:

    run = _existing_run(args.run_dir)
    if args.action == "list":
        for name in run.tables():
            t = run.table(name)
            print(f"{name}\tversion {t.version()}\t{t.num_rows()} rows")
        return 0
    table = run.table(args.table)
    if not table.exists():
        raise FileNotFoundError(f"table {args.table!r} does not exist in {run.uri}")
    if args.action == "history":
        for h in table.history():
            print(json.dumps(h, sort_keys=True))
        return 0
    data = table.read(version=args.version)
    shown = data.drop_columns([c for c in ("audio",) if c in data.column_names]).slice(0, args.limit)
    print(f"{args.table} version {args.version if args.version is not None else table.version()}: "
          f"{data.num_rows} rows")
    print(shown.to_pandas().to_string(max_colwidth=60))
    return 0


def cmd_export(args) -> int:
    from storage.export import export_table

    info = export_table(_existing_run(args.run_dir), args.table, args.out, args.format, args.version)
    print(f"exported {info['rows']} rows of {info['table']} version {info['version']} as {info['format']} "
          f"to {args.out}")
    return 0


def cmd_llm_serve(args) -> int:
    import time

    from dataflux.llm.server import MODEL_ALIAS, LocalLLMServer

    with LocalLLMServer(args.model, args.port, threads=args.threads) as server:
        print(f"serving {MODEL_ALIAS} at {server.base_url} (log: {server.log_path}); Ctrl-C stops it", flush=True)
        try:
            while server.process and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


def _existing_run(run_dir: str):
    from storage.run_folder import RunFolder

    if "://" not in run_dir and not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    return RunFolder(run_dir)


if __name__ == "__main__":
    sys.exit(main())
