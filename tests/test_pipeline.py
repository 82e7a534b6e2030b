"""The whole pipeline so far, through the CLI's library entry point, on a few demo clips."""

import yaml

from dataflux.config import load_config
from dataflux.pipeline import STAGES, run_pipeline
from storage.run_folder import RunFolder
from tests.conftest import DEMO_AUDIO

FILES = ["001_en_male_low_slow.flac", "016_en_female_high_slow.flac", "038_tone_440hz.ogg"]


def test_run_all_stages_then_rerun_does_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in FILES:
        (src / name).write_bytes((DEMO_AUDIO / name).read_bytes())
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"source": str(src), "out": str(tmp_path / "run"),
                                   "annotate": {"asr": {"model": "tiny.en", "language": "en"}},
                                   "generate": {"writer": "template", "max_nodes_per_clip": 2}}))
    info = run_pipeline(load_config(cfg))
    stages = info["invocations"][-1]["stages"]
    assert list(stages) == list(STAGES)
    assert stages["ingest"]["rows_out"] == 3 and stages["annotate"]["rows_out"] == 3
    assert stages["generate"]["rows_in"] == 6
    assert stages["generate"]["rows_out"] + stages["generate"]["rejected_total"] == 6
    assert info["counts"]["questions"] == stages["generate"]["rows_out"] > 0
    run = RunFolder(tmp_path / "run")
    assert {"clips", "annotations", "questions"} <= set(run.tables())
    again = run_pipeline(load_config(cfg))["invocations"][-1]["stages"]
    assert all(s["rows_in"] == 0 for s in again.values())
    assert again["generate"]["skipped"] == 6
