"""Annotate the demo audio once (the real bundled models, local runner) and check it against the labels."""

import csv
import json
from pathlib import Path

import pytest

from dataflux.wer import WerCounts, word_errors
from storage.run_folder import RunFolder
from tests.conftest import DEMO_LABELS

pytestmark = pytest.mark.slow
REQUIRED = ["clip_id", "transcript", "language", "gender", "f0_median_hz", "speech_rate_wps", "loudness_lufs",
            "speech_ratio", "dnsmos_ovrl", "num_speakers"]


@pytest.fixture(scope="module")
def annotated(demo_annotated):
    path, stats = demo_annotated
    run = RunFolder(path)
    labels = {r["file"]: r for r in csv.DictReader(open(DEMO_LABELS))}
    sources = {r["clip_id"]: Path(r["source_uri"]).name for r in
               run.table("clips").read(columns=["clip_id", "source_uri"]).to_pylist()}
    rows = [(labels[sources[a["clip_id"]]], a) for a in run.table("annotations").read().to_pylist()]
    return run, stats, rows


def accuracy(pairs):
    pairs = list(pairs)
    return sum(truth == got for truth, got in pairs) / len(pairs), len(pairs)


def test_every_clip_is_annotated_with_the_required_columns(annotated):
    run, stats, rows = annotated
    assert stats.rows_in == stats.rows_out == run.table("clips").num_rows() == len(rows)
    assert set(REQUIRED) <= set(run.table("annotations").schema.names)
    assert all(a["caption"] for _, a in rows)


def test_non_speech_clips_skip_the_speech_analyzers_with_a_reason(annotated):
    _, _, rows = annotated
    for label, a in rows:
        if label["kind"] != "speech":
            assert a["is_speech"] is False and a["transcript"] is None and a["gender"] is None
            assert set(json.loads(a["skipped"])) >= {"asr", "pitch", "gender", "speakers"}


def test_accuracy_against_the_demo_labels(annotated, capsys):
    _, _, rows = annotated
    speech = [(label, a) for label, a in rows if label["kind"] == "speech"]
    gender, n_gender = accuracy((label["gender"], a["gender"]) for label, a in speech)
    pitch, n_pitch = accuracy((label["pitch_level"], a["tag_pitch"]) for label, a in speech)
    rate, n_rate = accuracy((label["rate_level"], a["tag_rate"]) for label, a in speech)
    wer = WerCounts()
    natural_english = [(label, a) for label, a in speech if label["generator"].startswith("piper")]
    for label, a in natural_english:
        if label["file"] != "027_en_piper_long.flac":  # split in two: its label covers both halves
            wer += word_errors(label["transcript"], a["transcript"] or "")
    with capsys.disabled():  # the numbers belong in the test log, passing or not
        print(f"\nannotate vs demo labels: gender {gender:.1%} of {n_gender}, pitch level {pitch:.1%} of {n_pitch}, "
              f"speaking-rate level {rate:.1%} of {n_rate}, WER {wer.wer:.1%} on {wer.utterances} clean English "
              f"clips (S={wer.substitutions} D={wer.deletions} I={wer.insertions}, N={wer.reference_words})")
    assert gender >= 0.95
    assert pitch >= 0.90
    assert rate >= 0.90
    assert wer.wer <= 0.10
