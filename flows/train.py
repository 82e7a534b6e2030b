"""The `eureka-train` flow: fine-tune on a published corpus version, then announce the checkpoint
with `eureka.training.completed` (the `eureka-evaluate` deployment is triggered by it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.results import SERIALIZER


@task(result_serializer=SERIALIZER, name="train", retries=1, retry_delay_seconds=10, timeout_seconds=6 * 3600)
def train_task(config: str, run_dir: str, corpus_version: int | None, output_dir: str) -> dict:
    from model.data import CorpusSpec
    from model.train import load_train_config, train

    cfg = load_train_config(config, output_dir=output_dir)
    resume = None
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if (Path(output_dir) / "train_summary.json").exists():
        return json.loads((Path(output_dir) / "train_summary.json").read_text())  # trained already
    if checkpoints:
        resume = str(checkpoints[-1])  # a retried or re-run flow continues where it stopped
    return train(cfg, [CorpusSpec(run_dir, corpus_version)], resume_from=resume)


def model_dir(output_root: str, run_dir: str, corpus_version: int | None, config: str) -> str:
    digest = hashlib.sha256(Path(config).read_bytes()).hexdigest()[:8]
    return str(Path(output_root).resolve() / f"{Path(run_dir).name}-v{corpus_version}-{digest}")


@flow(result_serializer=SERIALIZER, name="eureka-train", log_prints=True)
def train(run_dir: str, corpus_version: int | None = None, config: str = "examples/train-tiny.yaml",
          output_root: str | None = None) -> dict:
    """Checkpoints go under `output_root` (default: the run folder's `models/`)."""
    output_dir = model_dir(output_root or str(Path(run_dir) / "models"), run_dir, corpus_version, config)
    summary = train_task(str(Path(config).resolve()), str(Path(run_dir).resolve()), corpus_version, output_dir)
    losses = [json.loads(line)["loss"] for line in open(Path(output_dir) / "train_log.jsonl")]
    create_markdown_artifact(
        f"**Checkpoint** `{summary['checkpoint']}`\n\nCorpus `{run_dir}` version {corpus_version}; "
        f"{summary['steps']} steps, {summary['samples_seen']} samples, {summary['skipped_too_long']} skipped as too "
        f"long; loss {losses[0]:.3f} -> {losses[-1]:.3f}", key="eureka-training",
        description="the trained checkpoint")
    emit_event("eureka.training.completed",
               resource={"prefect.resource.id": f"eureka.checkpoint.{Path(output_dir).name}"},
               payload={"checkpoint": summary["checkpoint"], "run_dir": str(Path(run_dir).resolve()),
                        "corpus_version": corpus_version, "steps": summary["steps"], "final_loss": losses[-1],
                        "config": str(Path(config).resolve())})
    return {**summary, "final_loss": losses[-1], "first_loss": losses[0]}
