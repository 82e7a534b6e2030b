"""The evaluation flow (which the retrain flow ends with) runs a suite of benchmarks in their published
layouts and puts the paper's table into its Prefect artifact. The flow runs in a child process against the
shared local server."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT
from tests.model.benchmark_layouts import WRITERS, tone

CHILD = """
import json, sys
from flows.evaluate import evaluate
a = json.loads(sys.argv[1])
result = evaluate(checkpoint=a["checkpoint"], data=a["data"], suite=a["suite"], output_root=a["root"], max_new_tokens=4)
print("RESULT " + json.dumps([c["name"] for c in result["table"]["columns"]]))
"""


@pytest.mark.slow
def test_the_evaluation_flow_puts_the_suite_table_into_its_artifact(local_prefect, tmp_path):
    import soundfile as sf
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from model.tiny import tiny_model_and_processor

    checkpoint = tmp_path / "train" / "final"
    model, processor = tiny_model_and_processor(seed=0)
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    sf.write(tmp_path / "a.wav", tone(0), 16000)
    (tmp_path / "held_out.jsonl").write_text(json.dumps({"id": "q1", "audio": "a.wav", "question": "Which?",
                                                         "options": ["x", "y", "z", "w"], "answer": "A"}) + "\n")
    suite = {"benchmarks": [{"name": "LibriSpeech-clean", "reader": "librispeech",
                             "path": str(WRITERS["librispeech"](tmp_path / "data"))},
                            {"name": "MMAU", "reader": "mmau", "path": str(WRITERS["mmau"](tmp_path / "data"))}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    args = {"checkpoint": str(checkpoint), "data": str(tmp_path / "held_out.jsonl"),
            "suite": str(tmp_path / "suite.yaml"), "root": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, cwd=ROOT,
                       timeout=600, env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
    assert json.loads(line.removeprefix("RESULT ")) == ["LibriSpeech-clean", "MMAU"]
    with get_client(sync_client=True) as client:
        wanted = ArtifactFilter(key=ArtifactFilterKey(any_=["eureka-evaluation"]))
        artifacts = client.read_artifacts(artifact_filter=wanted)
    # other tests' evaluation flows write this key too, and the server returns them in no set order: this
    # run's artifact names its best checkpoint, under tmp_path
    shown = next(a.data for a in artifacts if str(checkpoint) in a.data)
    assert "Benchmarks (suite `suite.yaml`)" in shown and "**LibriSpeech-clean**" in shown and "**MMAU**" in shown
    assert "| ASR | Understanding and reasoning |" in shown
