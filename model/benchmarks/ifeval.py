"""IFEval verdicts through lm-eval's copy of Google's instruction checkers (`lm_eval.tasks.ifeval`): strict
and loose, per instruction and per prompt, exactly as its `process_results` computes them.

NLTK data: the checkers module asks NLTK to download `punkt_tab` when it is imported, and two checkers
need NLTK's punkt data at run time (`length_constraints:number_sentences`, `change_case:capital_word_frequency`).
Nothing is ever downloaded here: the import runs with `nltk.download` disabled, and an instruction whose
checker needs data that is not installed is reported as skipped (left out of both denominators, and its
prompt out of the prompt-level ones), never guessed. Install the data (`python -m nltk.downloader punkt
punkt_tab`) where a network exists to score all instructions."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _utils():
    import contextlib
    import io

    import nltk

    real = nltk.download
    nltk.download = lambda *args, **kwargs: False  # never fetch at run time
    try:  # its import prints "Downloaded punkt_tab" even when nothing was
        with contextlib.redirect_stdout(io.StringIO()):
            from lm_eval.tasks.ifeval import utils
    finally:
        nltk.download = real
    return utils


def verdict(prompt: str, instruction_ids: list[str], kwargs: list[dict], response: str) -> dict:
    """{"strict": [bool|None], "loose": [...], "prompt_strict", "prompt_loose", "skipped": [ids]}; None marks
    an instruction skipped for missing NLTK data."""
    utils = _utils()
    strict, loose, skipped = [], [], []
    for i, instruction in enumerate(instruction_ids):
        one = utils.InputExample(key=0, instruction_id_list=[instruction], prompt=prompt, kwargs=[kwargs[i]])
        try:
            s = utils.test_instruction_following_strict(one, response).follow_instruction_list[0]
            lo = utils.test_instruction_following_loose(one, response).follow_instruction_list[0]
        except LookupError:  # NLTK resource not installed
            s = lo = None
            skipped.append(instruction)
        strict.append(s)
        loose.append(lo)
    scored = not skipped
    return {"strict": strict, "loose": loose, "skipped": skipped,
            "prompt_strict": all(strict) if scored else None, "prompt_loose": all(loose) if scored else None}


def summarize(rows: list[dict]) -> dict:
    """Prompt- and instruction-level accuracy, strict and loose, over what could be scored."""
    def mean(values):
        values = [v for v in values if v is not None]
        return round(sum(values) / len(values), 4) if values else None

    inst_s = [v for r in rows for v in r["strict"]]
    inst_l = [v for r in rows for v in r["loose"]]
    return {"prompt_level_strict": mean([r["prompt_strict"] for r in rows]),
            "prompt_level_loose": mean([r["prompt_loose"] for r in rows]),
            "inst_level_strict": mean(inst_s), "inst_level_loose": mean(inst_l),
            "n": len(rows), "instructions": len(inst_s),
            "skipped_instructions": sum(v is None for v in inst_s),
            "skipped_prompts": sum(r["prompt_strict"] is None for r in rows)}
