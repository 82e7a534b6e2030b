"""Audio question answering benchmarks in their official JSON layouts, and MMAU/MMAR's own answer rule.

Each question is shown with lettered options (`dataflux.mcq`); the prediction is scored twice: by our
anchored letter extraction (unparsed = wrong, counted) and by the benchmark's official string match
applied to the raw prediction, as its evaluation script does."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from dataflux.mcq import LETTERS, mcq_prompt
from model.benchmarks.common import LayoutError, read_audio, require
from model.data import MCQ_SYSTEM, Sample

MMAU = ("MMAU test-mini (Sakshi113/MMAU mmau-test-mini.json, the v05.15.25 revision or the first release): a JSON "
        "list of {id, audio_id: './test-mini-audios/ID.wav', question, choices, answer, task, category, "
        "sub-category, difficulty}, audio paths relative to the JSON file")
MMAR = ("MMAR (ddlBoJack/MMAR MMAR-meta.json): a JSON list of {id, audio_path: './audio/ID.wav', question, "
        "choices, answer, modality, category, sub-category, language}, audio paths relative to the JSON file")
MMSU = ("MMSU (ddwang2000/MMSU): JSONL files of {id, audio_path, question, choice_a..choice_d, answer_gt, task_name, "
        "category}, audio paths relative to the folder that holds the JSONL")


def string_match(answer: str, prediction: str, choices: list[str]) -> bool:
    """MMAU's and MMAR's official answer rule, reimplemented from their evaluation scripts
    (Sakshi113/MMAU evaluation.py and ddlBoJack/MMAR code/evaluation.py, which share it): lower-cased word
    tokens (`\\b\\w+\\b`); correct when every token of the answer is in the prediction and the prediction holds
    no token of a wrong choice that the answer lacks. An empty prediction is wrong."""
    def tokens(text: str) -> set[str]:
        return set(re.findall(r"\b\w+\b", str(text).lower()))

    predicted, right = tokens(prediction), tokens(answer)
    if not predicted:
        return False
    wrong = set()
    for choice in choices:
        choice_tokens = tokens(choice)
        if choice_tokens != right:
            wrong |= choice_tokens - right
    return right <= predicted and predicted.isdisjoint(wrong)


def _json_list(path: Path, benchmark: str, expected: str, names: tuple[str, ...]) -> tuple[list[dict], Path]:
    file = path if path.is_file() else next((path / n for n in names if (path / n).exists()), None)
    if file is None:
        raise LayoutError(benchmark, path, expected, f"none of {', '.join(names)}")
    try:
        rows = json.loads(file.read_text()) if file.suffix == ".json" else \
            [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise LayoutError(benchmark, file, expected, f"not JSON ({e})") from e
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        raise LayoutError(benchmark, file, expected, "not a list of objects")
    return rows, file.parent


def _choices(value) -> list[str]:
    """A list, or the stringified list some MMAR copies carry."""
    if isinstance(value, str):
        value = ast.literal_eval(value)
    return [str(c) for c in value]


def _mcq(benchmark: str, sid: str, wave, question: str, choices: list[str], answer: str, category: str,
         extra: dict, path, expected: str, official: str | None = "string_match") -> Sample:
    if not 2 <= len(choices) <= len(LETTERS):
        raise LayoutError(benchmark, path, expected, f"{sid} has {len(choices)} choices (2-{len(LETTERS)} supported)")
    return Sample(sid, sid, wave, mcq_prompt(question, choices), None, MCQ_SYSTEM, category, "mcq",
                  {"answer": answer, "options": choices, "benchmark": benchmark, "official": official, **extra})


def read_mmau(path: str, **_) -> list[Sample]:
    rows, root = _json_list(Path(path), "mmau", MMAU, ("mmau-test-mini.json",))
    samples = []
    for r in rows:
        require(r, ("id", "audio_id", "question", "choices"), "mmau", path, MMAU)
        if "answer" not in r:
            raise LayoutError("mmau", path, MMAU, "no answers (MMAU test keeps them hidden; use test-mini)")
        samples.append(_mcq("mmau", str(r["id"]), read_audio(root / r["audio_id"]), r["question"],
                            _choices(r["choices"]), r["answer"], r.get("task", ""),
                            {"sub_category": r.get("sub-category", ""), "difficulty": r.get("difficulty", "")},
                            path, MMAU))
    return samples


def read_mmar(path: str, **_) -> list[Sample]:
    rows, root = _json_list(Path(path), "mmar", MMAR, ("MMAR-meta.json",))
    samples = []
    for r in rows:
        require(r, ("id", "audio_path", "question", "choices", "answer", "modality"), "mmar", path, MMAR)
        samples.append(_mcq("mmar", str(r["id"]), read_audio(root / r["audio_path"]), r["question"],
                            _choices(r["choices"]), r["answer"], r["modality"],
                            {"sub_category": r.get("sub-category", ""), "layer": r.get("category", "")}, path, MMAR))
    return samples


def read_mmsu(path: str, **_) -> list[Sample]:
    root = Path(path)
    files = [root] if root.is_file() else sorted(root.glob("*.jsonl"))
    if not files:
        raise LayoutError("mmsu", root, MMSU, "no .jsonl file")
    samples = []
    for f in files:
        rows, base = _json_list(f, "mmsu", MMSU, ())
        for r in rows:
            require(r, ("id", "audio_path", "question", "choice_a", "choice_b", "answer_gt"), "mmsu", f, MMSU)
            choices = [r[k] for k in ("choice_a", "choice_b", "choice_c", "choice_d") if r.get(k)]
            samples.append(_mcq("mmsu", str(r["id"]), read_audio(base / r["audio_path"]), r["question"], choices,
                                r["answer_gt"], r.get("category") or r.get("task_name", ""),
                                {"task_name": r.get("task_name", "")}, f, MMSU, official=None))
    return samples
