"""Audio hours per wall-clock hour beside items/s: in the stage stats, and on the data card."""

from dataflux.report import data_card, summarize
from dataflux.runners.base import StageStats
from dataflux.step import Context, record_stats
from storage.run_folder import RunFolder


def test_stats_report_audio_hours_per_hour_per_node_and_entry():
    stats = StageStats("annotate", rows_in=120, seconds=60.0)
    stats.add_audio(1800.0, "node-a", ["decode", "describe"])
    stats.add_audio(1800.0, "node-b", ["decode"])
    d = stats.as_dict()
    assert d["items_per_s"] == 2.0 and d["audio_hours"] == 1.0
    assert d["audio_hours_per_hour"] == 60.0  # one hour of audio in one minute
    assert d["per_node"] == {"node-a": {"decode": 30.0, "describe": 30.0}, "node-b": {"decode": 30.0}}
    assert StageStats.from_dict("annotate", d).as_dict() == d  # survives run.json
    assert "audio_hours_per_hour" not in StageStats("generate", rows_in=5, seconds=1.0).as_dict()


def test_the_data_card_shows_each_steps_throughput(tmp_path):
    run = RunFolder(tmp_path / "run")
    stats = StageStats("annotate", rows_in=8, seconds=4.0)
    stats.add_audio(7200.0, "3f2a9c1d0b7e", ["decode"])
    record_stats(Context(run), stats)
    record_stats(Context(run, shard=(1, 2)), StageStats("generate", 4, 4, seconds=2.0))
    s = summarize(run)
    assert s["throughput"]["annotate"]["audio_hours_per_hour"] == 1800.0
    card = data_card(s)
    assert "| annotate | 8 | 4.0 | 2.0 | 1800.0 |" in card
    assert "| annotate @ 3f2a9c1d0b7e | | | | decode 1800.0 |" in card
    assert "| generate.2of2 | 4 | 2.0 | 2.0 | - |" in card
