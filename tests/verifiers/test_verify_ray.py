"""The verify chain on Ray actor pools gives the same verdicts as in-process."""

import pytest

from dataflux.runners import LocalRunner
from dataflux.runners.ray import RayRunner
from dataflux.stages.generate import run_generate
from dataflux.stages.verify import VerifyConfig, run_verify
from storage.run_folder import RunFolder
from tests.conftest import copy_run

pytestmark = pytest.mark.slow
CONFIG = VerifyConfig(answerers=({"name": "a", "backend": "analyzer", "stack": "signal"},
                                 {"name": "b", "backend": "analyzer", "stack": "signal"}), num_cpus=0.5)


def verdicts(run):
    return sorted(run.table("verdicts").read(columns=["question_id", "answers", "winner", "final_action"]).to_pylist(),
                  key=lambda v: v["question_id"])


def test_ray_and_local_verdicts_agree(demo_annotated, tmp_path, ray_session):
    local, ray = (RunFolder(copy_run(demo_annotated[0], tmp_path / n)) for n in ("local", "ray"))
    for run in (local, ray):
        run_generate(run)
    stats_local = run_verify(local, LocalRunner(), CONFIG)
    stats_ray = run_verify(ray, RayRunner(), CONFIG)
    assert stats_local.rows_out == stats_ray.rows_out == local.table("questions").num_rows() > 0
    assert verdicts(local) == verdicts(ray)
