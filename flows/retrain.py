"""The retrain chain as one flow: corpus version -> train -> evaluate -> compare with the best ->
`eureka.evaluation.completed` carrying the verdict (with a suite, the benchmarks' table goes into the
artifact). (Deployed, the same chain also runs through events: `dataflux.corpus.published` triggers
`eureka-train`, whose `eureka.training.completed` triggers `eureka-evaluate`.)"""

from __future__ import annotations

from prefect import flow


from flows.evaluate import evaluate
from flows.results import SERIALIZER
from flows.train import train


@flow(result_serializer=SERIALIZER, name="eureka-retrain", log_prints=True)
def retrain(run_dir: str, corpus_version: int | None = None, config: str = "examples/train-tiny.yaml",
            output_root: str | None = None, max_new_tokens: int | None = None, suite: str | None = None) -> dict:
    """With `suite` (a suite YAML of benchmarks), the evaluation's artifact carries the paper's table."""
    trained = train(run_dir, corpus_version, config, output_root)
    return evaluate(trained["checkpoint"], run_dir, corpus_version, None, config, output_root, max_new_tokens, suite)
