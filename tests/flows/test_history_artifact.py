"""The flow's announce step shows `corpus_history` as a table artifact on the real Prefect server,
backfilling versions published before the history existed. The flow runs in a child process."""

import json
import shutil
import subprocess
import sys

import pytest

from dataflux.stages.publish import run_publish
from storage.run_folder import RunFolder
from tests.conftest import ROOT
from tests.storage.fill import rows

pytestmark = pytest.mark.slow

CHILD = """
import sys
from prefect import flow
from flows.synthesize import announce
from storage.run_folder import RunFolder

@flow(name="announce-history")
def go(run_dir: str):
    return announce(RunFolder(run_dir), None)

go(sys.argv[1])
"""


def test_announce_shows_the_corpus_history_artifact(local_prefect, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    run = RunFolder(tmp_path / "run")
    run.write("clips", rows("clips", 0, 6))
    run.write("questions", rows("questions", 0, 6))
    for start, count in ((0, 2), (2, 3)):
        run.write("kept", rows("kept", start, count))
        run_publish(run)
    shutil.rmtree(run.local_path / "corpus_history")  # as if published before the history existed
    r = subprocess.run([sys.executable, "-c", CHILD, str(run.local_path)], capture_output=True, text=True,
                       cwd=ROOT, timeout=300, env=local_prefect.env())
    assert r.returncode == 0, r.stderr[-3000:]
    with get_client(sync_client=True) as client:
        wanted = ArtifactFilter(key=ArtifactFilterKey(any_=["dataflux-corpus-history"]))
        # the newest: the shared server also holds this key's artifacts from other tests' flow runs
        artifacts = client.read_artifacts(artifact_filter=wanted, sort=ArtifactSort.CREATED_DESC)
    assert artifacts
    shown = artifacts[0].data if isinstance(artifacts[0].data, list) else json.loads(artifacts[0].data)
    assert [(row["version"], row["items"], row["new_items"]) for row in shown] == [(0, 2, 2), (1, 5, 3)]
    assert all(row["questions"] == 6 for row in shown)
