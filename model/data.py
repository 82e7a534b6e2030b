"""Training and evaluation data from corpus versions: rows through `datasets`, chat samples, a
deterministic held-out split by clip, mixing by ratio, and length-grouped batches."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from dataflux.audio import decode_mono
from dataflux.mcq import mcq_prompt

MCQ_SYSTEM = ("You are an expert listener. Answer the multiple-choice question about the audio. Think briefly, "
              "then give the final answer as 'Answer: X'.")
ASR_SYSTEM = "You are an advanced ASR (Automatic Speech Recognition) AI assistant."


@dataclass(frozen=True)
class CorpusSpec:
    run_dir: str
    version: int | None = None  # latest by default
    ratio: float = 1.0
    system: str = MCQ_SYSTEM


@dataclass
class Sample:
    id: str
    clip_id: str
    audio: np.ndarray
    prompt: str
    target: str | None
    system: str
    category: str = ""
    task: str = "mcq"
    reference: dict = field(default_factory=dict)  # what scoring compares against
    think: bool = False  # the target starts with the model's thinking (the prompt opens the think block)

    @property
    def length_hint(self) -> int:
        return len(self.audio) // 1280 + len(self.prompt) + len(self.target or "")


def held_out(clip_id: str, fraction: float) -> bool:
    """The same clips are held out on every run and machine (a hash of the clip id)."""
    return int(hashlib.sha256(clip_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


Reasoning = Literal["trace", "short", "none"]


def mcq_target(row: dict, with_reasoning: bool | Reasoning = "short") -> tuple[str, bool]:
    """What the model learns to say for a corpus row, and whether it thinks first: `trace` = the winner's
    thinking trace, then its reasoning and answer (rows without a trace fall back to `short`); `short`
    (or true) = the judged reasoning and "Answer: X"; `none` (or false) = only "Answer: X"."""
    mode = {True: "short", False: "none"}.get(with_reasoning, with_reasoning)
    if mode == "none" or not row.get("target"):
        return f"Answer: {row['answer']}", False
    if mode == "trace" and row.get("trace"):
        return f"{row['trace'].strip()}\n</think>\n\n{row['target']}", True
    return row["target"], False


def read_corpus(spec: CorpusSpec, split: str, eval_fraction: float,
                with_reasoning: bool | Reasoning = "short") -> list[Sample]:
    """A corpus version's rows, read from its Parquet files with `datasets`, as chat samples."""
    import datasets

    from storage.run_folder import RunFolder

    table = RunFolder(spec.run_dir).table("corpus")
    files = table.files(spec.version)
    if not files:
        which = "" if spec.version is None else f" version {spec.version}"
        raise FileNotFoundError(f"{spec.run_dir} has no corpus{which}")
    rows = datasets.load_dataset("parquet", data_files=files, split="train")
    out = []
    for row in rows.sort("question_id"):
        if held_out(row["clip_id"], eval_fraction) != (split == "eval"):
            continue
        target, think = mcq_target(row, with_reasoning)
        out.append(Sample(id=row["question_id"], clip_id=row["clip_id"], audio=decode_mono(row["audio"]),
                          prompt=mcq_prompt(row["question"], row["options"]), target=target, system=spec.system,
                          category=row["node_path"], task="mcq", think=think,
                          reference={"answer": row["answer"], "options": list(row["options"])}))
    return out


def mix(corpora: list[list[Sample]], ratios: list[float], seed: int, epoch: int) -> list[Sample]:
    """One epoch's order: each corpus shuffled (seed, epoch), then interleaved by ratio (smooth
    weighted round-robin) until the largest share is used up; smaller corpora repeat to keep the ratio."""
    rng = random.Random(f"{seed}|{epoch}")
    pools = [rng.sample(c, len(c)) for c in corpora]
    weights = [r / sum(ratios) for r in ratios]
    total = max(int(round(len(c) / w)) for c, w in zip(corpora, weights) if c)
    credit, used, order = [0.0] * len(corpora), [0] * len(corpora), []
    for _ in range(total):
        credit = [c + w for c, w in zip(credit, weights)]
        pick = max(range(len(corpora)), key=lambda i: credit[i] if pools[i] else -1)
        credit[pick] -= 1
        order.append(pools[pick][used[pick] % len(pools[pick])])
        used[pick] += 1
    return order


def length_grouped(order: list, batch_size: int, key, window: int = 16, seed: int = 0) -> list[list]:
    """Batches of similar length: sort within windows of `window` batches, then shuffle the batches."""
    batches = []
    span = batch_size * window
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=key)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    random.Random(seed).shuffle(batches)
    return batches
