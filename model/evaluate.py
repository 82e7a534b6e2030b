"""Evaluate a checkpoint: inference (greedy, fixed per task) writes predictions.jsonl, resumable;
scoring (`model/scoring.py`) writes scored.jsonl, summary.json and report.md.

Data: a benchmark in its published layout (`model.benchmarks`: LibriSpeech, FLEURS, Kaldi sets, MMAU,
MMAR, MMSU, VoiceBench subsets), a corpus version's held-out split (clips chosen by a hash of clip_id), or
files in our schema (Parquet or JSONL), one row per sample:

    id        unique id (the row number when absent)
    task      mcq | asr | label (mcq when absent)
    audio     a path (relative to the file) or the audio bytes; `audio_path` is read too
    question  the prompt (mcq, label)
    options   the choices (mcq); MMAU's `choices` is read too
    answer    the right letter, or the right option's text (mcq)
    category  for per-category accuracy (mcq); MMAU's `category`/`sub-category`
    reference the transcript (asr); `language` picks the normaliser
    label, family   the gold label and its synonym family (label)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dataflux.mcq import mcq_prompt
from model.data import ASR_SYSTEM, MCQ_SYSTEM, CorpusSpec, Sample, read_corpus
from model.scoring import score_file

DECODE = {"mcq": {"max_new_tokens": 512}, "asr": {"max_new_tokens": 448}, "label": {"max_new_tokens": 32},
          "ifeval": {"max_new_tokens": 512}, "refusal": {"max_new_tokens": 512}, "caption": {"max_new_tokens": 512}}
LABEL_SYSTEM = "You are an expert listener. Answer with one word."


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 8
    max_new_tokens: dict = field(default_factory=dict)  # per task, overriding DECODE
    eval_fraction: float = 0.1
    # eager: model.generate with a growing cache; static: batched greedy on a static KV cache (model/decode.py);
    # compiled: static with the decoding step through torch.compile (the first batch of each shape compiles)
    decode: str = "eager"

    def __post_init__(self):
        if self.decode not in ("eager", "static", "compiled"):
            raise ValueError(f"decode: {self.decode!r} is not eager, static or compiled")


def load_file(path: str | Path) -> list[Sample]:
    from model.benchmarks.asr import ASR_PROMPT
    from model.benchmarks.common import audio_of

    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    samples = []
    for i, r in enumerate(rows):
        task = r.get("task", "mcq")
        wave = audio_of(r.get("audio", r.get("audio_path")), path.parent)
        sid = str(r.get("id", i))
        if task == "mcq":
            options = list(r.get("options") or r.get("choices"))
            samples.append(Sample(sid, sid, wave, mcq_prompt(r["question"], options), None, MCQ_SYSTEM,
                                  r.get("category") or r.get("sub-category") or "", "mcq",
                                  {"answer": r["answer"], "options": options}))
        elif task == "asr":
            samples.append(Sample(sid, sid, wave, ASR_PROMPT, None, ASR_SYSTEM, "", "asr",
                                  {"reference": r["reference"], "language": r.get("language", "en")}))
        elif task == "label":
            samples.append(Sample(sid, sid, wave, r["question"], None, LABEL_SYSTEM, r.get("family", ""), "label",
                                  {"label": r["label"], "family": r.get("family", "emotion")}))
        else:
            raise ValueError(f"{path}: row {i} has unknown task {task!r} (mcq, asr, label)")
    return samples


def load_data(data: str, eval_fraction: float, benchmark: str | None = None, limit: int | None = None,
              options: dict | None = None) -> tuple[list[Sample], str]:
    """`RUN_DIR[@VERSION]` (a corpus's held-out split), a .jsonl / .parquet file in our schema, or, with
    `benchmark` (a reader of `model.benchmarks`), a benchmark in its published layout."""
    if benchmark:
        from model.benchmarks import read_benchmark

        return read_benchmark(benchmark, data, limit, **(options or {})), f"{benchmark}:{Path(data).resolve()}"
    if Path(data).suffix in (".jsonl", ".parquet"):
        return load_file(data), str(Path(data).resolve())
    run_dir, _, version = data.partition("@")
    spec = CorpusSpec(run_dir, int(version) if version else None)
    return read_corpus(spec, "eval", eval_fraction), f"{Path(run_dir).resolve()}@{version or 'latest'} (held out)"


def infer(model, processor, samples: list[Sample], out: Path, config: EvalConfig) -> int:
    """Greedy predictions for the samples not yet in `out` (predictions.jsonl); returns how many were new."""
    from model.benchmarks.common import jsonl
    from model.decode import greedy

    done = {r["id"] for r in jsonl(out)}
    todo = [s for s in samples if s.id not in done]
    device = next(model.parameters()).device
    model.eval()
    with open(out, "a") as f:
        for task in DECODE:
            group = [s for s in todo if s.task == task]
            limit = config.max_new_tokens.get(task, DECODE[task]["max_new_tokens"])
            for i in range(0, len(group), config.batch_size):
                batch = group[i:i + config.batch_size]
                enc = processor.pad([processor.encode(s.prompt, s.audio, None, s.system) for s in batch], "left")
                enc.update(processor.features([s.audio for s in batch]))
                enc = {k: v.to(device) for k, v in enc.items() if k != "labels"}
                ids = greedy(model, enc, limit, static=config.decode != "eager", compile=config.decode == "compiled")
                texts = processor.tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                for s, text in zip(batch, texts):
                    f.write(json.dumps({"id": s.id, "task": task, "category": s.category, "prediction": text,
                                        **s.reference}, ensure_ascii=False) + "\n")
                f.flush()  # a killed run resumes after the last written batch
    return len(todo)


def evaluate(checkpoint: str, data: str, out_dir: str | Path, config: EvalConfig = EvalConfig(),
             score_only: bool = False, benchmark: str | None = None, limit: int | None = None,
             options: dict | None = None, caption_qa=None, judge=None) -> dict:
    """With `caption_qa` (a `dataflux.llm.Endpoint`), an MMAU/MMAR benchmark is scored through captions: the
    model describes each clip (captions.jsonl) and that endpoint's text LLM answers from the caption alone.
    With `judge` (an Endpoint), AdvBench refusals are also judged by that LLM (judge.jsonl), beside the rule."""
    from model.build import build, is_checkpoint

    if not score_only and checkpoint != "tiny" and not is_checkpoint(checkpoint):  # before build's "needs a tokenizer"
        raise FileNotFoundError(f"checkpoint {checkpoint}: " + ("not an Eureka-Audio checkpoint folder (no config.json "
                                "with model_type eureka_audio)" if Path(checkpoint).is_dir() else "no such folder"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples, dataset = load_data(data, config.eval_fraction, benchmark, limit, options)
    if not samples:
        raise ValueError(f"{data} gives no evaluation samples")
    predictions = out_dir / "predictions.jsonl"
    if caption_qa is not None:
        from model.benchmarks.captioning import caption_samples

        samples = caption_samples(samples)
    new, answered = 0, 0
    if not score_only:
        model, processor = build(checkpoint)
        if torch.cuda.is_available():
            model.to("cuda", dtype=torch.bfloat16)
        new = infer(model, processor, samples, out_dir / "captions.jsonl" if caption_qa else predictions, config)
        if caption_qa is not None:
            from model.benchmarks.captioning import answer_from_captions

            answered = answer_from_captions(out_dir / "captions.jsonl", predictions, caption_qa,
                                            str(out_dir / "llm_cache.sqlite"))
        if judge is not None:
            from model.benchmarks.safety import judge_refusals

            judge_refusals(predictions, out_dir / "judge.jsonl", judge, str(out_dir / "llm_cache.sqlite"))
    decode = {t: {"max_new_tokens": config.max_new_tokens.get(t, d["max_new_tokens"]), "do_sample": False}
              for t, d in DECODE.items()}
    meta = {"model": "eureka-audio", "benchmark": benchmark, "checkpoint": str(checkpoint), "dataset": dataset,
            "decode": decode, "samples": len(samples), "inferred_this_run": new}
    if caption_qa is not None:
        meta["caption_qa"] = {"answerer": caption_qa.model, "answered_this_run": answered}
    return score_file(predictions, out_dir, meta)


