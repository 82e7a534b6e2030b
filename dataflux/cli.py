"""The `dataflux` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from storage.run_folder import RunFolderBusy
from storage.tables import StorageError

EXIT_BAD_ARGS = 2
EXIT_STRICT = 3
EXIT_STORAGE = 4  # a table or run.json could not be written
EXIT_REGRESSION = 1  # compare --fail-on-regression: a benchmark regressed beyond its 95% interval


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError, RunFolderBusy) as e:  # bad paths, configs, names: no traceback
        _error(e.args[0] if isinstance(e, KeyError) and e.args else e)  # str(KeyError) would add quotes
        return EXIT_BAD_ARGS
    except StorageError as e:  # disk full, read-only or unwritable run folder: nothing half-written
        print(f"dataflux: error: {e}", file=sys.stderr)
        return EXIT_STORAGE
    except OSError as e:  # other writes (exports, reports) on a full or read-only disk
        print(f"dataflux: error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return EXIT_STORAGE


def _error(message) -> None:
    """One line on stderr: a multi-line message (a config's list of problems) is joined with '; '."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    print(f"dataflux: error: {'; '.join(lines)}", file=sys.stderr)


class BadArgument(ValueError):
    """A command-line value that cannot work, caught before any work starts; the message names the argument."""

    def __init__(self, argument: str, problem: str):
        super().__init__(f"argument {argument}: {problem}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints the whole usage first; one line is easier to read and grep
        self.exit(EXIT_BAD_ARGS, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dataflux", description="Turn raw audio into verified instruction data.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", help="decode, validate and store a source's audio as clips")
    ingest.add_argument("source", help="a directory, a manifest (.csv/.jsonl/.parquet) or an fsspec URL")
    ingest.add_argument("--out", required=True, help="run folder (local path or object-store URL)")
    ingest.add_argument("--config", help="YAML config (its ingest section applies)")
    _set_arg(ingest)
    _runner_args(ingest)
    ingest.set_defaults(func=cmd_ingest)

    run = sub.add_parser("run", help="run the pipeline stages into a run folder")
    run.add_argument("--config", required=True, help="YAML config, e.g. examples/demo.yaml")
    run.add_argument("--source", help="overrides the config's source")
    run.add_argument("--out", help="overrides the config's run folder")
    run.add_argument("--until", help="last stage to run (default: all)")
    _set_arg(run)
    _runner_args(run)
    run.set_defaults(func=cmd_run)

    config = sub.add_parser("config", help="the pipeline config's JSON schema")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config_sub.add_parser("schema", help="print the JSON schema of a pipeline config file "
                                         "(docs/config.schema.json)").set_defaults(func=cmd_config_schema)

    tables = sub.add_parser("tables", help="inspect the tables of a run folder")
    tables.add_argument("action", choices=["list", "show", "history", "diff"])
    tables.add_argument("run_dir")
    tables.add_argument("--table", default="clips", help="table for show/history (default: clips)")
    tables.add_argument("--version", type=int, help="table version for show (default: latest)")
    tables.add_argument("--limit", type=int, default=10, help="rows for show (default: 10)")
    tables.add_argument("--from", dest="from_version", type=int, help="diff: the older version")
    tables.add_argument("--to", dest="to_version", type=int, help="diff: the newer version (default: latest)")
    tables.add_argument("--json", action="store_true", help="diff: print JSON")
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
    export.add_argument("--license", default="unknown",
                        help="license field of the hf dataset card, a hub license id (default: unknown)")
    export.set_defaults(func=cmd_export)
    maintain = sub.add_parser("maintain", help="compact and vacuum a run folder's tables, write checkpoints, "
                                                "prune the LLM cache; prints what it freed")
    maintain.add_argument("run_dir")
    maintain.add_argument("--retention-hours", type=float, default=24 * 7,
                          help="every version committed within this many hours stays readable (default: 168)")
    maintain.add_argument("--no-compact", action="store_true", help="vacuum and checkpoint only")
    maintain.add_argument("--keep-cache", action="store_true", help="leave the LLM cache as it is")
    maintain.add_argument("--dry-run", action="store_true", help="say what would be deleted; change nothing")
    maintain.set_defaults(func=cmd_maintain)
    server = sub.add_parser("server", help="start a local Prefect server (SQLite, 127.0.0.1) and a process worker")
    server.add_argument("--port", type=int, default=4200)
    server.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1); any other needs PREFECT_SERVER_API_AUTH_STRING "
                             "(user:password) in the environment")
    server.add_argument("--pool", default="dataflux", help="work pool the worker serves")
    server.add_argument("--no-worker", action="store_true")
    server.set_defaults(func=cmd_server)
    deploy = sub.add_parser("deploy", help="register prefect.yaml's deployments, the work pool and the LLM quotas")
    deploy.add_argument("--prefect-file", default=None, help="prefect.yaml (the repository's by default)")
    deploy.add_argument("--only", nargs="*", help="deployment names to register (all by default)")
    deploy.add_argument("--pool", help="work pool for every deployment (default: each one's in prefect.yaml)")
    deploy.add_argument("--git-url", help="workers clone this repository (default: $DATAFLUX_GIT_URL, prefect.yaml's "
                                          "pull step; unset: they run this checkout's folder)")
    deploy.add_argument("--commit", help="the commit they clone (default: $DATAFLUX_GIT_COMMIT, else this HEAD)")
    deploy.add_argument("--alerts-webhook", metavar="URL",
                        help="create alert automations notifying this URL (a custom-webhook block, JSON subject/body)")
    deploy.add_argument("--alerts-block", metavar="SLUG/NAME",
                        help="create alert automations notifying an existing notification block (slack-webhook/ops)")
    deploy.add_argument("--alerts-max-minutes", type=float,
                        help="also alert when a flow run is still running after this many minutes")
    deploy.set_defaults(func=cmd_deploy)
    watch = sub.add_parser("watch", help="runs triggered by new audio")
    watch_sub = watch.add_subparsers(dest="watch_command", required=True, metavar="ACTION")
    notify = watch_sub.add_parser("serve", help="receive S3/MinIO bucket notifications over HTTP and emit "
                                                "dataflux.source.updated for objects created under --source "
                                                "(the open-source stand-in for a Prefect Cloud webhook)")
    notify.add_argument("--source", required=True, help="s3://BUCKET/PREFIX: objects created under it are announced")
    notify.add_argument("--run-dir", required=True, help="the run folder the triggered synthesize run writes")
    notify.add_argument("--config", default="examples/demo.yaml", help="the pipeline config the runs use")
    notify.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1); any other needs --token-env")
    notify.add_argument("--port", type=int, default=8787)
    notify.add_argument("--token-env", metavar="VAR",
                        help="environment variable holding the shared secret senders must present "
                             "(Authorization: Bearer, X-DataFlux-Token or ?token=); never on the command line")
    notify.set_defaults(func=cmd_watch_serve)
    backfill = sub.add_parser("backfill", help="run the dataflux-backfill deployment: one synthesize run per "
                                               "partition folder of a source, a bounded number at a time")
    backfill.add_argument("--source", required=True,
                          help="a folder (or fsspec URL) whose subfolders are the partitions, e.g. dates")
    backfill.add_argument("--run-dir", required=True, help="RUN_DIR/<partition>/ gets each partition's run folder")
    backfill.add_argument("--config", default="examples/demo.yaml", help="the pipeline config the runs use")
    backfill.add_argument("--from", dest="start", metavar="FIRST", help="first partition (names compare as text)")
    backfill.add_argument("--to", dest="end", metavar="LAST", help="last partition, included")
    backfill.add_argument("--partitions", nargs="+", metavar="NAME", help="these partitions (instead of --from/--to)")
    backfill.add_argument("--max-concurrent", type=int, default=2, help="synthesize runs at a time (default 2)")
    backfill.add_argument("--deployment", default=BACKFILL_DEPLOYMENT,
                          help=f"the backfill deployment (default {BACKFILL_DEPLOYMENT})")
    backfill.set_defaults(func=cmd_backfill)
    train = sub.add_parser("train", help="fine-tune Eureka-Audio on corpus versions")
    train.add_argument("--config", required=True, help="a training YAML (examples/train-tiny.yaml)")
    train.add_argument("--corpus", action="append", help="RUN_DIR[@VERSION]; repeat to mix (overrides the config's)")
    train.add_argument("--out", help="output folder (overrides output_dir)")
    train.add_argument("--max-steps", type=int)
    train.add_argument("--resume", help="a checkpoint folder to resume from")
    train.add_argument("--nproc", type=int, default=1,
                       help="processes on this machine (torchrun; DDP or FSDP by the config's `parallel`)")
    _set_arg(train)
    train.set_defaults(func=cmd_train)
    evaluate = sub.add_parser("evaluate", help="evaluate a checkpoint; writes predictions, scores, summary, report")
    evaluate.add_argument("--checkpoint", required=True, help="an Eureka-Audio checkpoint folder")
    evaluate.add_argument("--data", help="RUN_DIR[@VERSION] (held-out split) or a .jsonl/.parquet file")
    evaluate.add_argument("--suite", help="a suite YAML of benchmarks in their published layouts (instead of --data); "
                                          "writes OUT/table.md in the paper's layout and OUT/NAME/ per benchmark")
    evaluate.add_argument("--out", required=True)
    evaluate.add_argument("--max-new-tokens", type=int,
                          help="cap for every task (defaults: mcq 512, asr 448, label 32)")
    evaluate.add_argument("--eval-fraction", type=float, default=0.1)
    evaluate.add_argument("--decode", choices=("eager", "static", "compiled"), default="eager",
                          help="greedy decoding: eager generate, a static KV cache, or static + torch.compile (--data)")
    evaluate.add_argument("--score-only", action="store_true", help="re-score existing predictions")
    evaluate.set_defaults(func=cmd_evaluate)
    compare = sub.add_parser("compare", help="compare two evaluation summaries, or two suite runs' folders with "
                                             "bootstrap 95%% intervals (B against A)")
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--fail-on-regression", action="store_true",
                         help=f"exit with {EXIT_REGRESSION} when any benchmark regresses beyond its 95%% interval "
                              "(two suite runs only; without it compare exits 0 whatever it finds)")
    compare.set_defaults(func=cmd_compare)
    model = sub.add_parser("model", help="Eureka-Audio model utilities")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")
    info = model_sub.add_parser("info", help="parameter counts of a model config, without allocating weights")
    info.add_argument("config", help="a config JSON, a checkpoint folder, or a preset: full, tiny")
    info.set_defaults(func=cmd_model_info)
    return p


def _set_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (the value is YAML), e.g. verify.batch_size=8; repeatable")


def _overrides(args, **flags) -> dict:
    """`--set` values, then the dedicated flags given (they win): one path into the config loader."""
    from dataflux.settings import parse_assignments

    return {**parse_assignments(args.set), **{k: v for k, v in flags.items() if v is not None}}


def cmd_config_schema(args) -> int:
    from dataflux.config import schema

    print(json.dumps(schema(), indent=2))
    return 0


def _runner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runner", choices=["local", "ray"], help="where stages run (default: local)")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start one locally)")
    p.add_argument("--strict", action="store_true", help=f"exit with {EXIT_STRICT} if any input was rejected")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_ingest(args) -> int:
    _check_run_args(args)
    from dataflux.config import load_config

    config = load_config(args.config, _overrides(args, source=args.source, out=args.out, runner=args.runner,
                                                 ray_address=args.ray_address))
    return _run(config, "ingest", args, command="ingest")


def cmd_run(args) -> int:
    _check_run_args(args)
    from dataflux.config import load_config

    config = load_config(args.config, _overrides(args, source=args.source, out=args.out, runner=args.runner,
                                                 ray_address=args.ray_address))
    return _run(config, args.until, args, command="run")


def _check_run_args(args) -> None:
    from dataflux.pipeline import STAGES

    _existing("--config", args.config)
    if getattr(args, "until", None) and args.until not in STAGES:
        raise BadArgument("--until", f"unknown stage {args.until!r}; stages are {', '.join(STAGES)}")
    _existing("SOURCE" if args.command == "ingest" else "--source", args.source, "path")
    if args.out and "://" not in args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise BadArgument("--out", f"{args.out} is a file, not a run folder")


def cmd_server(args) -> int:
    import time

    _in_range("--port", args.port, 1, 65535)
    if not args.pool.strip():
        raise BadArgument("--pool", "must not be empty")

    import os

    from flows.server import AUTH_ENV, LOOPBACK, LocalPrefect

    auth = os.environ.get(AUTH_ENV) or None
    if args.host not in LOOPBACK and not auth:
        raise BadArgument("--host", f"refusing to bind {args.host} without an auth string: anyone who reaches the "
                                    f"server could run code through it; set {AUTH_ENV}=user:password (Prefect's "
                                    "basic auth) in the environment, never on the command line")
    if auth and ":" not in auth:
        raise BadArgument("--host", f"{AUTH_ENV} must be user:password")
    with LocalPrefect(port=args.port, pool=args.pool, worker=not args.no_worker, host=args.host,
                      auth_string=auth) as prefect:
        print(f"Prefect server: {prefect.ui_url} (API {prefect.api_url}, bound to {args.host}"
              f"{', basic auth on' if auth else ''}); worker on pool {args.pool!r}"
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
    import re

    import yaml

    from flows.deploy import ROOT, deploy

    prefect_file = Path(args.prefect_file) if args.prefect_file else ROOT / "prefect.yaml"
    _existing("--prefect-file", str(prefect_file))
    try:
        declared = [d["name"] for d in (yaml.safe_load(prefect_file.read_text()) or {}).get("deployments") or []]
    except (yaml.YAMLError, AttributeError, TypeError, KeyError):
        declared = []
    if not declared:
        raise BadArgument("--prefect-file", f"{prefect_file} is not a prefect.yaml with a `deployments` list")
    unknown = sorted(set(args.only or ()) - set(declared))
    if unknown:
        raise BadArgument("--only", f"unknown deployment(s) {', '.join(unknown)}; {prefect_file} declares "
                                    f"{', '.join(declared)}")
    if args.alerts_webhook and args.alerts_block:
        raise BadArgument("--alerts-webhook", "give --alerts-webhook or --alerts-block, not both")
    if args.alerts_block and "/" not in args.alerts_block:
        raise BadArgument("--alerts-block", f"{args.alerts_block}: expected BLOCK-TYPE-SLUG/NAME")
    if args.alerts_max_minutes is not None and args.alerts_max_minutes <= 0:
        raise BadArgument("--alerts-max-minutes", f"must be > 0, not {args.alerts_max_minutes}")
    if args.pool is not None and not args.pool.strip():
        raise BadArgument("--pool", "must not be empty")
    if args.commit is not None and not re.fullmatch(r"[0-9a-f]{7,64}", args.commit):
        raise BadArgument("--commit", f"{args.commit!r} is not a commit SHA (hexadecimal)")
    for d in deploy(prefect_file, args.only, args.pool, args.git_url, args.commit):
        print(f"deployed {d['name']} ({d['id']}): {d['schedules']} schedule(s), {d['triggers']} trigger(s)")
        print(f"  code: {d['code']}")
    if args.alerts_webhook or args.alerts_block:
        from datetime import timedelta

        from flows.alerts import ensure_alerts, save_webhook_block

        block = save_webhook_block(args.alerts_webhook) if args.alerts_webhook else args.alerts_block
        limit = timedelta(minutes=args.alerts_max_minutes) if args.alerts_max_minutes else None
        for name in ensure_alerts(block, max_duration=limit):
            print(f"automation {name}: notifies {block}")
    return 0


def cmd_watch_serve(args) -> int:
    """Events go to the Prefect API in PREFECT_API_URL (the synthesize deployment's trigger fires there)."""
    import logging
    import time

    _in_range("--port", args.port, 0, 65535)
    _existing("--config", args.config)
    from flows.notify import NotificationReceiver, split_source
    from flows.server import LOOPBACK

    try:
        split_source(args.source)
    except ValueError as e:
        raise BadArgument("--source", str(e)) from None
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env) or None
        if token is None:
            raise BadArgument("--token-env", f"{args.token_env} is not set (or empty) in the environment")
    if args.host not in LOOPBACK and not token:
        raise BadArgument("--host", f"refusing to bind {args.host} without a token: anyone who reaches the "
                                    "receiver could start runs; put a shared secret in an environment variable and "
                                    "name it with --token-env VAR, never on the command line")
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise BadArgument("--source", "PREFECT_API_URL is not set: the events would go nowhere "
                                      "(export PREFECT_API_URL=http://127.0.0.1:4200/api, see dataflux server)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with NotificationReceiver(args.source, args.run_dir, args.config, host=args.host, port=args.port,
                              token=token) as receiver:
        print(f"receiving bucket notifications at {receiver.url} (bound to {args.host}"
              f"{', token required' if token else ''}) for {args.source}; events to {PREFECT_API_URL.value()}. "
              "Ctrl-C stops it.", flush=True)
        try:
            while receiver.thread and receiver.thread.is_alive():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


BACKFILL_DEPLOYMENT = "dataflux-backfill/dataflux-backfill"


def cmd_backfill(args) -> int:
    """Checks the partition choice here (for a local source), then starts one run of the backfill
    deployment on the Prefect server in PREFECT_API_URL and prints its id and link; a worker on the
    deployment's pool runs it. Local paths go as absolute paths (the worker runs in another folder)."""
    _in_range("--max-concurrent", args.max_concurrent, 1)
    if args.partitions and (args.start or args.end):
        raise BadArgument("--partitions", "give --partitions or --from/--to, not both")
    if not (args.partitions or args.start or args.end):
        raise BadArgument("--from", "choose the partitions: --from FIRST --to LAST (either may be left open) "
                                    "or --partitions NAME...")
    if args.start and args.end and args.start > args.end:
        raise BadArgument("--from", f"{args.start} sorts after --to {args.end}")
    _existing("--source", args.source, "folder")
    _existing("--config", args.config)

    def local(path: str) -> str:
        return path if "://" in path else str(Path(path).resolve())

    source, run_dir, config = local(args.source), local(args.run_dir), local(args.config)
    from flows.watch import partitions

    try:
        chosen = partitions(source, args.partitions, args.start, args.end)
    except ValueError as e:
        raise BadArgument("--partitions", str(e)) from None
    if not chosen:
        raise BadArgument("--from", f"no partition folder of {source} lies in [{args.start or ''}, {args.end or ''}]")
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.utilities.urls import url_for

    parameters = {"source": source, "run_dir": run_dir, "config": config, "max_concurrent": args.max_concurrent,
                  "partitions_list": args.partitions, "start": args.start, "end": args.end}
    try:
        run = run_deployment(args.deployment, parameters=parameters, timeout=0, as_subflow=False)
    except ObjectNotFound:
        raise BadArgument("--deployment", f"{args.deployment} is not on the Prefect server "
                                          "(register it: dataflux deploy --only dataflux-backfill)") from None
    print(f"started flow run {run.name} ({run.id}) of {args.deployment}: {len(chosen)} partition(s), "
          f"at most {args.max_concurrent} at a time: {', '.join(chosen)}")
    link = url_for("flow-run", obj_id=run.id, url_type="ui")
    if link:
        print(f"  flow run: {link}")
    return 0


def corpus_specs(values: list[str] | None):
    return [_corpus_spec("--corpus", value) for value in values or []] or None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launching process dies (Linux), so a launcher killed
    outright leaves no torchrun and ranks behind."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_process_group(cmd: list[str]) -> int:
    """`cmd` in its own session (its process group: torchrun and its ranks), SIGTERM / SIGINT passed on to
    the whole group, and the group killed if this process leaves early; returns its exit status."""
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent)

    def forward(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # left early (an exception in this process): take the group down with us
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cmd_train(args) -> int:
    from model.train import load_train_config, train

    _existing("--config", args.config)
    _in_range("--max-steps", args.max_steps, 1)
    _existing("--resume", args.resume, "folder")
    if args.resume and not (Path(args.resume) / "training_state.pt").is_file():
        raise BadArgument("--resume", f"{args.resume} has no training_state.pt (not a checkpoint-N folder of a run)")

    _in_range("--nproc", args.nproc, 1)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # relaunch this command under torchrun
        argv = ["train", "--config", args.config] + [a for c in args.corpus or () for a in ("--corpus", c)]
        argv += [a for flag, v in (("--out", args.out), ("--max-steps", args.max_steps), ("--resume", args.resume))
                 if v is not None for a in (flag, str(v))] + [a for v in args.set for a in ("--set", v)]
        return run_process_group([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc-per-node={args.nproc}", "-m", "dataflux.cli", *argv])
    if "WORLD_SIZE" in os.environ:  # a rank: `kill -USR1 PID` prints where every thread of it is (a hang)
        import faulthandler
        import signal

        faulthandler.enable()
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    config = load_train_config(args.config, _overrides(args, output_dir=args.out, max_steps=args.max_steps))
    summary = train(config, corpus_specs(args.corpus), args.resume)
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(f"trained {summary['steps']} steps ({summary['samples_seen']} samples, {summary['skipped_too_long']} "
          f"skipped as too long); checkpoint: {summary['checkpoint']}")
    return 0


def cmd_evaluate(args) -> int:
    from model.build import is_checkpoint
    from model.evaluate import DECODE, EvalConfig, evaluate

    _in_range("--eval-fraction", args.eval_fraction, 0, 1, exclusive=True)
    _in_range("--max-new-tokens", args.max_new_tokens, 1)
    if args.score_only:  # --score-only re-scores what is there
        _existing("--out", str(Path(args.out) / ("table.json" if args.suite else "predictions.jsonl")))
    else:
        _existing("--checkpoint", args.checkpoint, "folder")
        if not is_checkpoint(args.checkpoint):
            raise BadArgument("--checkpoint", f"{args.checkpoint} is not an Eureka-Audio checkpoint folder "
                                              "(no config.json with model_type eureka_audio)")
    if (args.data is None) == (args.suite is None):
        raise BadArgument("--data", "give exactly one of --data and --suite")
    if args.suite:
        if args.decode != "eager":
            raise BadArgument("--decode", "applies to --data; a suite decodes eagerly")
        return _evaluate_suite(args)
    if Path(args.data).suffix in (".jsonl", ".parquet"):
        _existing("--data", args.data)
    else:
        _corpus_spec("--data", args.data)

    caps = {task: args.max_new_tokens for task in DECODE} if args.max_new_tokens else {}
    summary = evaluate(args.checkpoint, args.data, args.out, EvalConfig(max_new_tokens=caps,
                                                                         eval_fraction=args.eval_fraction,
                                                                         decode=args.decode),
                       score_only=args.score_only)
    print(json.dumps(summary["metrics"], indent=2))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def _evaluate_suite(args) -> int:
    from pydantic import ValidationError

    from model.benchmarks.suite import load_suite, run_suite

    _existing("--suite", args.suite)
    try:
        suite = load_suite(args.suite)
    except (ValidationError, ValueError) as e:
        raise BadArgument("--suite", str(e)) from None
    if args.max_new_tokens:
        suite = suite.model_copy(update={"max_new_tokens": args.max_new_tokens})
    run_suite(args.checkpoint, suite, args.out, score_only=args.score_only)
    print((Path(args.out) / "table.md").read_text())
    print(f"table: {Path(args.out) / 'table.md'}")
    return 0


def cmd_compare(args) -> int:
    from model.scoring import compare

    if all((Path(d) / "table.json").is_file() for d in (args.a, args.b)):  # two suite runs
        from model.benchmarks.suite import compare_markdown, compare_runs

        result = compare_runs(args.a, args.b)
        print(compare_markdown(result))
        print(f"regressions beyond the 95% interval: {', '.join(result['regressions']) or 'none'}")
        return EXIT_REGRESSION if args.fail_on_regression and result["regressions"] else 0
    if args.fail_on_regression:
        raise BadArgument("--fail-on-regression", "needs two suite runs' folders (with table.json): only they "
                                                  "have intervals to judge a regression by")
    result = compare(_summary_file("A", args.a), _summary_file("B", args.b))
    for row in result["metrics"]:
        verdict = "better" if row["b_better"] else "tie" if row["tie"] else "worse"
        print(f"{row['metric']}: {row['a']} -> {row['b']} ({row['delta']:+}) {verdict}")
    print(f"verdict: B is {result['verdict']} (decided by {result['decided_by']})")
    return 0


def cmd_model_info(args) -> int:
    from model.info import describe, load_config, parameter_counts

    try:
        config = load_config(args.config)
    except FileNotFoundError as e:
        raise BadArgument("CONFIG", str(e)) from None
    print(describe(parameter_counts(config)))
    return 0


def _run(config, until, args, command: str) -> int:
    from dataflux.pipeline import run_pipeline

    if config.source and "://" not in config.source and not Path(config.source).exists():
        raise BadArgument("--config", f"its source {config.source} does not exist")
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
    _in_range("--limit", args.limit, 0)
    run = _existing_run(args.run_dir)
    if args.action == "list":
        for name in run.tables():
            t = run.table(name)
            print(f"{name}\tversion {t.version()}\t{t.num_rows()} rows")
        return 0
    table = _existing_table("--table", run, args.table, args.version)
    if args.action == "diff":
        from dataflux.history import describe_diff, diff

        if args.from_version is None:
            raise BadArgument("--from", "diff needs the older version (--from N)")
        _existing_table("--from", run, args.table, args.from_version)
        _existing_table("--to", run, args.table, args.to_version)
        d = diff(run, args.table, args.from_version, table.version() if args.to_version is None else args.to_version)
        print(json.dumps(d, indent=2) if args.json else "\n".join(describe_diff(d)))
        return 0
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

    run = _existing_run(args.run_dir)
    _existing_table("--table", run, args.table, args.version)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise BadArgument("--out", f"{args.out} is a file, not a folder")
    info = export_table(run, args.table, args.out, args.format, args.version, license=args.license)
    print(f"exported {info['rows']} rows of {info['table']} version {info['version']} as {info['format']} "
          f"to {args.out}")
    return 0


def cmd_maintain(args) -> int:
    _in_range("--retention-hours", args.retention_hours, 0)
    run = _existing_run(args.run_dir)
    if run.local_path is None:
        raise BadArgument("RUN_DIR", "maintain works on local run folders")
    from flows.maintain import describe, maintain_run

    for line in describe(maintain_run(str(run.local_path), args.retention_hours, not args.no_compact,
                                      not args.keep_cache, args.dry_run)):
        print(line)
    return 0


def cmd_llm_serve(args) -> int:
    import time

    from dataflux.llm.server import MODEL_ALIAS, LocalLLMServer

    _in_range("--port", args.port, 1, 65535)
    _in_range("--threads", args.threads, 1)
    _existing("--model", args.model)
    with LocalLLMServer(args.model, args.port, threads=args.threads) as server:
        print(f"serving {MODEL_ALIAS} at {server.base_url} (log: {server.log_path}); Ctrl-C stops it", flush=True)
        try:
            while server.process and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


def _existing_run(run_dir: str, argument: str = "RUN_DIR"):
    from storage.run_folder import RunFolder

    if "://" not in run_dir and not Path(run_dir).is_dir():
        raise BadArgument(argument, f"run folder {run_dir} does not exist")
    return RunFolder(run_dir)


# Checks run before any work starts, so that a bad value costs nothing and says which argument it was.

def _existing(argument: str, path: str | None, kind: str = "file") -> None:
    """`kind`: file, folder or path (either). URLs are left to the reader that opens them."""
    if path is None or "://" in str(path):
        return
    p = Path(path)
    if not p.exists():
        raise BadArgument(argument, f"{kind} {path} does not exist")
    if kind != "path" and not (p.is_file() if kind == "file" else p.is_dir()):
        raise BadArgument(argument, f"{path} is not a {kind}")


def _in_range(argument: str, value, low=None, high=None, exclusive: bool = False) -> None:
    if value is None:
        return
    below = low is not None and (value <= low if exclusive else value < low)
    above = high is not None and (value >= high if exclusive else value > high)
    if below or above:
        bounds = f"({low}, {high})" if exclusive else f"{low}..{high}" if high is not None else f">= {low}"
        raise BadArgument(argument, f"must be {'in ' if high is not None else ''}{bounds}, not {value}")


def _existing_table(argument: str, run, name: str, version: int | None = None):
    """The run folder's table `name`, which must exist and have `version` (when given)."""
    try:
        table = run.table(name)
    except KeyError as e:
        raise BadArgument(argument, e.args[0]) from None
    if not table.exists():
        raise BadArgument(argument, f"table {name!r} does not exist in {run.uri} (it has: "
                                    f"{', '.join(run.tables()) or 'no tables'})")
    latest = table.version()
    if version is not None and not 0 <= version <= latest:
        raise BadArgument("--version" if argument == "--table" else argument,
                          f"table {name!r} has versions 0..{latest}, not {version}")
    return table


def _corpus_spec(argument: str, value: str):
    """`RUN_DIR[@VERSION]`: a run folder with a corpus table that has that version."""
    from model.data import CorpusSpec

    run_dir, at, version = value.partition("@")
    if at and not version.isdigit():
        raise BadArgument(argument, f"{value}: the version after @ must be a number >= 0")
    version = int(version) if at else None
    _existing_table(argument, _existing_run(run_dir, argument), "corpus", version)
    return CorpusSpec(run_dir, version)


def _summary_file(argument: str, path: str) -> dict:
    """An evaluation's summary.json."""
    _existing(argument, path)
    try:
        summary = json.loads(Path(path).read_text())
    except ValueError as e:
        raise BadArgument(argument, f"{path} is not JSON ({e})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        raise BadArgument(argument, f"{path} is not an evaluation summary (no `metrics`)")
    return summary


if __name__ == "__main__":
    sys.exit(main())
