"""Readers for the benchmarks the Eureka-Audio paper reports, each from its published layout in a local
folder (never a download), and the table they fill.

Each reader returns `model.data.Sample`s whose `reference` carries what scoring needs (the benchmark's
name, its answer, and the fields its own scoring rule reads). A folder in the wrong layout raises
`LayoutError`, which names the benchmark version expected and the layout it looked for.

    reader                 version expected                              task
    librispeech            LibriSpeech (OpenSLR 12) test-clean/test-other  asr
    fleurs                 FLEURS (google/fleurs) one language folder    asr
    kaldi                  Kaldi data dir (AISHELL-2, WenetSpeech)       asr
    mmau                   MMAU v05.15.25 test-mini JSON                 mcq (+ official string match)
    mmar                   MMAR MMAR-meta.json                           mcq (+ official string match)
    mmsu                   MMSU (ddwang2000/MMSU) question JSONL         mcq
    voicebench-openbookqa  VoiceBench (hlt-lab/voicebench) openbookqa    mcq
    voicebench-mmsu        VoiceBench mmsu (12 domain splits)            mcq
    voicebench-ifeval      VoiceBench ifeval                             ifeval
    voicebench-advbench    VoiceBench advbench                           refusal
"""

from __future__ import annotations

from model.benchmarks.common import LayoutError

READERS = {
    "librispeech": ("model.benchmarks.asr", "read_librispeech"),
    "fleurs": ("model.benchmarks.asr", "read_fleurs"),
    "kaldi": ("model.benchmarks.asr", "read_kaldi"),
    "mmau": ("model.benchmarks.audioqa", "read_mmau"),
    "mmar": ("model.benchmarks.audioqa", "read_mmar"),
    "mmsu": ("model.benchmarks.audioqa", "read_mmsu"),
    "voicebench-openbookqa": ("model.benchmarks.voicebench", "read_openbookqa"),
    "voicebench-mmsu": ("model.benchmarks.voicebench", "read_mmsu"),
    "voicebench-ifeval": ("model.benchmarks.voicebench", "read_ifeval"),
    "voicebench-advbench": ("model.benchmarks.voicebench", "read_advbench"),
}


def read_benchmark(reader: str, path: str, limit: int | None = None, **options):
    """The samples of one benchmark (the first `limit` in the published order when given)."""
    import importlib

    if reader not in READERS:
        raise ValueError(f"unknown benchmark reader {reader!r}; known: {', '.join(READERS)}")
    module, name = READERS[reader]
    samples = getattr(importlib.import_module(module), name)(path, **options)
    return samples[:limit] if limit else samples


__all__ = ["LayoutError", "READERS", "read_benchmark"]
