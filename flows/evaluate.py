"""The `eureka-evaluate` flow: score a checkpoint on the corpus's held-out split (or benchmark
files), compare it with the best checkpoint so far, and announce the verdict with
`eureka.evaluation.completed`; a checkpoint worse than the best beyond the bound (`score_regression`)
also emits `eureka.evaluation.regressed`, which the `eureka-evaluation-regressed` automation
(flows/alerts.py) turns into a notification."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.results import SERIALIZER

EVALUATION_EVENT = "eureka.evaluation.completed"
REGRESSION_EVENT = "eureka.evaluation.regressed"
# Metrics that are a proportion of `n` items: their comparison gets a normal-approximation interval.
PROPORTIONS = {"mcq.accuracy", "label.accuracy"}


def score_regression(previous: dict, new: dict, comparison: dict, max_score_drop: float = 0.0,
                     z: float = 1.96) -> dict | None:
    """When `comparison` (model.scoring.compare of `previous`, the best so far, and `new`) says worse,
    whether the deciding metric fell beyond its bound: more than `max_score_drop` (absolute) and, for an
    accuracy over n items, more than z standard errors of the difference of two proportions (so a
    one-item wobble on a small split does not alert). Returns the figures, or None."""
    if comparison.get("verdict") != "worse" or not comparison.get("decided_by"):
        return None
    row = next(r for r in comparison["metrics"] if r["metric"] == comparison["decided_by"])
    drop = abs(row["delta"])
    task, name = row["metric"].split(".", 1)
    interval = None
    if row["metric"] in PROPORTIONS:
        na = previous["metrics"].get(task, {}).get("n")
        nb = new["metrics"].get(task, {}).get("n")
        if na and nb:
            a, b = row["a"], row["b"]
            interval = round(z * (a * (1 - a) / na + b * (1 - b) / nb) ** 0.5, 4)
    bound = max(max_score_drop, interval or 0.0)
    if drop <= bound + 1e-12:
        return None
    return {"metric": row["metric"], "best": row["a"], "new": row["b"], "delta": row["delta"], "bound": round(bound, 4),
            "max_score_drop": max_score_drop, "interval": interval,
            "n_best": previous["metrics"].get(task, {}).get("n"), "n_new": new["metrics"].get(task, {}).get("n"),
            "best_checkpoint": previous.get("checkpoint"), "checkpoint": new.get("checkpoint")}


def regression_message(r: dict, link: str | None, corpus: str | None = None) -> str:
    why = f"bound {r['bound']}: max_score_drop {r['max_score_drop']}" + \
        (f", {r['interval']} = 1.96 standard errors of the difference" if r["interval"] is not None else "")
    return "\n".join([
        f"Eureka checkpoint {r['checkpoint']} scored worse than the best so far ({r['best_checkpoint']})"
        + (f" on {corpus}" if corpus else "") + ":",
        f"- {r['metric']}: {r['best']} -> {r['new']} ({r['delta']:+g}; {why})",
        f"- items: {r['n_best']} (best) and {r['n_new']} (new)",
        f"flow run: {link or 'not run from a flow'}"])


def announce(checkpoint: str, summary: dict, verdict: dict, previous: dict | None, report: str,
             max_score_drop: float = 0.0, data: str | None = None) -> dict | None:
    """Emit `eureka.evaluation.completed`, and `eureka.evaluation.regressed` (figures, bound, the flow
    run's link) when the checkpoint is worse than the best beyond the bound; returns the regression."""
    from prefect import get_run_logger
    from prefect.runtime import flow_run
    from prefect.utilities.urls import url_for

    resource = {"prefect.resource.id": f"eureka.checkpoint.{Path(checkpoint).parent.name}",
                "prefect.resource.name": checkpoint}
    emit_event(EVALUATION_EVENT, resource=resource,
               payload={"checkpoint": checkpoint, "verdict": verdict["verdict"], "best": verdict["best"],
                        "metrics": summary["metrics"], "report": report})
    found = score_regression(previous, summary, verdict, max_score_drop) if previous else None
    if found:
        link = url_for("flow-run", obj_id=flow_run.id, url_type="ui") if flow_run.id else None
        message = regression_message(found, link, data)
        get_run_logger().warning(message)
        emit_event(REGRESSION_EVENT, resource=resource,
                   payload={**found, "message": message, "flow_run_url": link, "report": report, "data": data})
    return found


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
    """B = this checkpoint against A = the best so far; a better (or first) checkpoint becomes the best.
    `previous` is the best's summary (None for the first)."""
    from model.scoring import compare

    best = Path(best_file)
    previous = None
    if not best.exists():
        result = {"verdict": "first", "metrics": [], "decided_by": None}
    else:
        previous = json.loads(Path(json.loads(best.read_text())["summary"]).read_text())
        result = compare(previous, summary)
    if result["verdict"] in ("first", "better"):
        best.parent.mkdir(parents=True, exist_ok=True)
        best.write_text(json.dumps({"checkpoint": summary["checkpoint"], "summary": summary_path}, indent=2))
    return {**result, "best": json.loads(best.read_text())["checkpoint"], "previous": previous}


@flow(result_serializer=SERIALIZER, name="eureka-evaluate", log_prints=True)
def evaluate(checkpoint: str, run_dir: str | None = None, corpus_version: int | None = None,
             data: str | None = None, config: str = "examples/train-tiny.yaml", output_root: str | None = None,
             max_new_tokens: int | None = None, suite: str | None = None, max_score_drop: float = 0.0) -> dict:
    """The best checkpoint so far is recorded in `output_root/best.json` (default: the folder that holds
    the checkpoint's training folder, i.e. where `eureka-train` put it). With `suite` (a suite YAML), the
    benchmarks' table in the paper's layout goes into the artifact too (folder `eval-suite-NAME/`).
    A worse checkpoint whose deciding metric fell by more than `max_score_drop` and (for accuracies) more
    than the 95% interval of the difference emits `eureka.evaluation.regressed`."""
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
    previous = verdict.pop("previous", None)
    regression = announce(checkpoint, summary, verdict, previous, str(Path(out_dir) / "report.md"),
                          max_score_drop, data)
    return {"summary": summary, "comparison": verdict, "table": table, "regression": regression}
