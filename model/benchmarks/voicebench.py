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
                               "benchmark": f"voicebench-{name}", "official": "voicebench_mcq",
                               "prompt_text": r["prompt"]}))
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


# VoiceBench's multiple-choice answer rule (src/evaluator/mcq.py of MatthewCYM/VoiceBench, Apache-2.0),
# reimplemented: the lower-cased response (a leading "<1>"/"<2>"/"<3>" dropped) is searched for each phrase
# below with the letter a-d in place of {}, phrases in this order, letters a to d; then a response that is
# only a letter, or starts with a letter and one of . , : ); then three literal fallbacks. Kept as VoiceBench
# has it, including "answer is **", which holds no letter and so reads as A. Where VoiceBench fills a failed
# extraction with a random letter, here it stays a failure: wrong, and counted.
VOICEBENCH_MCQ_PHRASES = (
    "答案是{}", "答案是 {}", "答案是选项{}", "答案应该是{}", "答案应该是 {}", "答案就是选项{}", "答案是‘{}", "是{}：",
    "答案选{}", "{}是正确", "选项{}是最合适的", "answer is **", "the answer is '{}'", "{} is the best answer",
    "the answer is {}", "the correct answer is {}", "would select {}", "would choose {}", "would select option {}",
    "would choose option {}", 'is "{}"', 'is "{}.', "would be {}", "would be option {}", "would be ({})",
    "would be option ({})", "is {},", "is typically {},", "is typically {}.", "i'd say {}.", "option {}.",
    "option {}:", "option {},", "is {}:", "is {}.", "is {},", "is: {}.", "is ({})", ":\n{}.", ":\n{})", ":\n{},",
    ": \n{}.", ":  \n{}.", ":\n\n{}.", ":\n\n{})", ":\n\n{},", ": \n\n{}.", "is option {},", "({}) would be",
    "is ({}).", "is {})", "is: {})", "(option {})", "answer is ({})", 'select option "{}"', "is: {}",
    "is likely '{}'", "is option '{}'", "would be '{}'", "is the **{}** ", "the answer to the question is '{}'",
    "question is **{}**", "known as '{}'", "is '{})", " {}.", " {},", " {}:", " {})", '"{}.', '"{},', '"{}:',
    "({})", '"{}"',
)  # fmt: skip


def voicebench_letter(response: str) -> str | None:
    text = (response or "").lower()
    if text[:3] in ("<1>", "<2>", "<3>"):
        text = text[3:].strip()
    for phrase in VOICEBENCH_MCQ_PHRASES:
        for letter in "abcd":
            if phrase.replace("{}", letter) in text:
                return letter.upper()
    for letter in "abcd":
        if text == letter or any(text.startswith(letter + p) for p in ".,:)"):
            return letter.upper()
    if "would be a." in text or 'would be "a.' in text or \
            "the best option from the given choices would be a scorpion (a)" in text:
        return "A"
    return None
