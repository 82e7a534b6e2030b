"""Verify and publish refuse questions whose clip is not in the clips table, before committing
anything: no verdict, no reject, no corpus version, no export folder for the batch that had one."""

import shutil

import pytest

from dataflux.config import load_config
from dataflux.runners import LocalRunner
from dataflux.stages.publish import run_publish
from dataflux.stages.verify import run_verify
from storage.run_folder import RunFolder
from tests.conftest import ROOT


@pytest.fixture
def run(demo_published, tmp_path):
    """A copy of the published demo run."""
    return RunFolder(shutil.copytree(demo_published[0].local_path, tmp_path / "run"))


def versions(run: RunFolder) -> dict:
    return {name: run.table(name).version() for name in run.tables()}


def test_verify_refuses_a_question_without_its_clip(run):
    question = run.table("questions").read().to_pylist()[0]
    # a new question on a real clip (would be answered) and one on a clip that is not there
    run.write("questions", [{**question, "question_id": "guard_real"},
                            {**question, "question_id": "guard_ghost", "clip_id": "no-such-clip"}], {"stage": "test"})
    before = versions(run)
    with pytest.raises(ValueError, match="1 clips with questions are not in the clips table, e.g. no-such-clip"):
        run_verify(run, LocalRunner(), load_config(ROOT / "examples" / "demo.yaml").verify)
    assert versions(run) == before  # the real question's verdict was not committed either
    assert "guard_real" not in run.table("verdicts").read(columns=["question_id"])["question_id"].to_pylist()


def test_publish_refuses_a_kept_item_without_its_clip(run):
    kept = run.table("kept").read().to_pylist()[0]
    run.write("kept", [{**kept, "question_id": "guard_real"},
                       {**kept, "question_id": "guard_ghost", "clip_id": "no-such-clip"}], {"stage": "test"})
    before, exports = versions(run), sorted((run.local_path / "published").iterdir())
    with pytest.raises(RuntimeError, match="1 kept clips are not in the clips table, e.g. no-such-clip"):
        run_publish(run)
    assert versions(run) == before
    assert sorted((run.local_path / "published").iterdir()) == exports
