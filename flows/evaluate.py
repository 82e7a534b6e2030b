"""The `eureka-evaluate` flow: score a checkpoint on the corpus's held-out split (or benchmark
files), compare it with the best checkpoint so far, and announce the verdict with
`eureka.evaluation.completed`."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.results import SERIALIZER


@task(result_serializer=SERIALIZER, name="evaluate", retries=1, retry_delay_seconds=10)
def evaluate_task(checkpoint: str, data: str, out_dir: str, eval_fraction: float, max_new_tokens: int | None) -> dict:
    from model.evaluate import DECODE, EvalConfig, evaluate

    caps = {t: max_new_tokens for t in DECODE} if max_new_tokens else {}
    return evaluate(checkpoint, data, out_dir, EvalConfig(max_new_tokens=caps, eval_fraction=eval_fraction))


@task(result_serializer=SERIALIZER, name="evaluate-suite", retries=1, retry_delay_seconds=10)
def suite_task(checkpoint: str, suite: str, out_dir: str, max_new_tokens: int | None) -> dict:
    """The suite's benchmarks into one table (model/benchmarks/suite.py); a retry resumes per benchmark."""
    from model.benchmarks.suite import load_suite, run_suite

    loaded = load_suite(suite)
    if max_new_tokens:
        loaded = loaded.model_copy(update={"max_new_tokens": max_new_tokens})
    return run_suite(checkpoint, loaded, out_dir)


@task(result_serializer=SERIALIZER, name="compare-with-best")
def compare_task(summary: dict, summary_path: str, best_file: str) -> dict:
    """B = this checkpoint against A = the best so far; a better (or first) checkpoint becomes the best."""
    from model.scoring import compare

    best = Path(best_file)
    if not best.exists():
        result = {"verdict": "first", "metrics": [], "decided_by": None}
    else:
        previous = json.loads(Path(json.loads(best.read_text())["summary"]).read_text())
        result = compare(previous, summary)
    if result["verdict"] in ("first", "better"):
        best.parent.mkdir(parents=True, exist_ok=True)
        best.write_text(json.dumps({"checkpoint": summary["checkpoint"], "summary": summary_path}, indent=2))
    return {**result, "best": json.loads(best.read_text())["checkpoint"]}


@flow(result_serializer=SERIALIZER, name="eureka-evaluate", log_prints=True)
def evaluate(checkpoint: str, run_dir: str | None = None, corpus_version: int | None = None,
             data: str | None = None, config: str = "examples/train-tiny.yaml", output_root: str | None = None,
             max_new_tokens: int | None = None, suite: str | None = None) -> dict:
    """The best checkpoint so far is recorded in `output_root/best.json` (default: the folder that holds
    the checkpoint's training folder, i.e. where `eureka-train` put it). With `suite` (a suite YAML), the
    benchmarks' table in the paper's layout goes into the artifact too (folder `eval-suite-NAME/`)."""
    from model.train import load_train_config

    if data is None:
        if run_dir is None:
            raise ValueError("give `data` (a benchmark file) or `run_dir` (a corpus's held-out split)")
        data = f"{run_dir}@{corpus_version}" if corpus_version is not None else run_dir
    out_dir = str(Path(checkpoint).parent / f"eval-{Path(data.split('@')[0]).stem}")
    fraction = load_train_config(config).eval_fraction
    summary = evaluate_task(checkpoint, data, out_dir, fraction, max_new_tokens)
    root = Path(output_root) if output_root else Path(checkpoint).resolve().parent.parent
    verdict = compare_task(summary, str(Path(out_dir) / "summary.json"), str(root.resolve() / "best.json"))
    report = (Path(out_dir) / "report.md").read_text()
    table = None
    if suite:
        suite_dir = Path(checkpoint).parent / f"eval-suite-{Path(suite).stem}"
        table = suite_task(checkpoint, suite, str(suite_dir), max_new_tokens)
        report += "\n\n## Benchmarks (suite `" + Path(suite).name + "`)\n\n" + \
            (suite_dir / "table.md").read_text().split("\n", 2)[2]
    create_markdown_artifact(f"**Verdict: {verdict['verdict']}** (best: `{verdict['best']}`)\n\n{report}",
                             key="eureka-evaluation", description="scores and the comparison with the best checkpoint")
    emit_event("eureka.evaluation.completed",
               resource={"prefect.resource.id": f"eureka.checkpoint.{Path(checkpoint).parent.name}"},
               payload={"checkpoint": checkpoint, "verdict": verdict["verdict"], "best": verdict["best"],
                        "metrics": summary["metrics"], "report": str(Path(out_dir) / "report.md")})
    return {"summary": summary, "comparison": verdict, "table": table}
