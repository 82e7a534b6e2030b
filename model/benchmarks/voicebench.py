"""VoiceBench subsets (hlt-lab/voicebench, the Hugging Face dataset of arXiv 2410.17196) from a local copy:
the Hub's parquet folder for one subset (`openbookqa/test-00000-of-00001.parquet`; mmsu has one file per
domain, `mmsu/law-00000-of-00001.parquet`, ...) or a `datasets.save_to_disk` folder of it.

The question is spoken; the model hears the audio and gets no text of it. `prompt` (the spoken text) is kept
for the record and for IFEval, whose checkers read it."""

from __future__ import annotations

import re
from pathlib import Path

from model.benchmarks.common import audio_of, hf_rows, require
from model.data import Sample

SYSTEM = "You are a helpful voice assistant. Respond to the user's spoken request."
PROMPT = "Respond to the spoken request."
LAYOUT = ("VoiceBench (hlt-lab/voicebench) subset {name}: a folder of the Hub's parquet files for it "
          "(SPLIT-00000-of-00001.parquet) or a datasets.save_to_disk folder, rows with {fields}")
# "A. text B. text ..." or one option per line, as the spoken multiple-choice prompts are written
_OPTION = re.compile(r"(?:^|\s)([A-D])[\.\)]\s+(.+?)(?=\s+[A-D][\.\)]\s+|\s*$)", re.S)


def _rows(path: str, name: str, fields: tuple[str, ...]) -> list[tuple[str, dict]]:
    expected = LAYOUT.format(name=name, fields=", ".join(fields))
    rows = hf_rows(Path(path), f"voicebench-{name}", expected)
    for _, r in rows[:1]:
        require(r, fields, f"voicebench-{name}", path, expected)
    return rows


def _options(prompt: str) -> list[str] | None:
    found = _OPTION.findall(prompt)
    letters = [letter for letter, _ in found]
    return [text.strip() for _, text in found] if letters == list("ABCD"[:len(letters)]) and len(letters) >= 2 else None


def _mcq(path: str, name: str) -> list[Sample]:
    samples = []
    for i, (split, r) in enumerate(_rows(path, name, ("audio", "prompt", "reference"))):
        sid = str(r.get("id", f"{split}-{i}"))
        samples.append(Sample(sid, sid, audio_of(r["audio"], Path(path)), PROMPT, None, SYSTEM,
                              split if name == "mmsu" else "", "mcq",
                              {"answer": str(r["reference"]).strip(), "options": _options(r["prompt"]),
                               "benchmark": f"voicebench-{name}", "official": None, "prompt_text": r["prompt"]}))
    return samples


def read_openbookqa(path: str, **_) -> list[Sample]:
    return _mcq(path, "openbookqa")


def read_mmsu(path: str, **_) -> list[Sample]:
    return _mcq(path, "mmsu")


def read_ifeval(path: str, **_) -> list[Sample]:
    samples = []
    for i, (_, r) in enumerate(_rows(path, "ifeval", ("audio", "prompt", "key", "instruction_id_list", "kwargs"))):
        sid = str(r.get("key", i))
        samples.append(Sample(sid, sid, audio_of(r["audio"], Path(path)), PROMPT, None, SYSTEM, "", "ifeval",
                              {"prompt_text": r["prompt"], "instruction_id_list": list(r["instruction_id_list"]),
                               "kwargs": [dict(k or {}) for k in r["kwargs"]], "benchmark": "voicebench-ifeval"}))
    return samples


def read_advbench(path: str, **_) -> list[Sample]:
    samples = []
    for i, (_, r) in enumerate(_rows(path, "advbench", ("audio", "prompt"))):
        sid = str(r.get("id", i))
        samples.append(Sample(sid, sid, audio_of(r["audio"], Path(path)), PROMPT, None, SYSTEM, "", "refusal",
                              {"prompt_text": r["prompt"], "benchmark": "voicebench-advbench"}))
    return samples
