"""Streaming training data for every family the paper trains on, read a shard at a time.

Sources (`SourceSpec.kind`):
- `mcq`: a DataFlux corpus (a run folder's `corpus` table, or our `hf` export: `question`, `options`,
  `target`/`answer`, `audio`); rows marked `hard` can be repeated (`hard_weight`).
- `asr`: audio + transcript (`text` | `transcript` | `sentence` | `reference`), the target under the paper's
  ASR system prompt.
- `caption`: audio + caption (`caption` | `text`), under the captioning instruction.
- `swift`: ms-swift JSONL (`messages` + `audios`, `<audio>` tags), which our `swift` export writes.
- `text`: text-only instructions (`messages`, or `instruction`/`input`/`output`, or `prompt`/`response`):
  no audio placeholders, so the audio encoder is never called for them.
Each source is a Parquet / JSONL file, a folder of them, a `datasets.save_to_disk` folder (its Arrow
files), a DataFlux run folder, or any fsspec URL (`s3://...`). A shard is one file.

The order is a pure function of the seed and the global sample index g, never of the number of ranks or
workers: each source's stream is its shards in a per-epoch order, rows shuffled within the shard, then
shuffled again in blocks of `shuffle_buffer` (a block's raw rows are all that is held); sources are
interleaved by a smooth weighted round-robin of their ratios. Micro-batch M holds samples
[M*b, (M+1)*b); rank r takes M = M0 + j*world + r, DataLoader worker w the j with j % workers == w, and
decodes (audio, log-mel features, tokens) only its own. The data position is the next micro-batch index
M0: resuming from it continues the same global order on any number of ranks.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from bisect import bisect_right
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from model.data import ASR_SYSTEM, MCQ_SYSTEM, Reasoning, Sample, held_out, mcq_target

KINDS = ("mcq", "asr", "caption", "swift", "text")
ASR_PROMPT = "Transcribe the audio."
CAPTION_SYSTEM = ("You are an expert audio captioner. Describe the input audio comprehensively, covering every "
                  "detail: sound events, the acoustic environment, the speakers and how they speak.")
CAPTION_PROMPT = "Describe the audio in detail."
SAMPLE_RATE = 16000
SUFFIXES = (".parquet", ".jsonl", ".json", ".arrow")


@dataclass(frozen=True)
class SourceSpec:
    path: str  # file, folder, `datasets` folder, DataFlux run folder or fsspec URL
    kind: Literal["mcq", "asr", "caption", "swift", "text"] = "mcq"
    ratio: float = 1.0
    family: str = ""  # the mixture family it counts towards (asr, paralinguistic, semantic, caption, text)
    system: str | None = None  # overrides the kind's system prompt
    prompt: str | None = None  # overrides the kind's instruction (asr, caption)
    hard_weight: float = 1.0  # rows with `hard` true are seen this many times (fractions by a stable hash)
    version: int | None = None  # a run folder's corpus version (latest by default)
    with_reasoning: bool | Reasoning = "short"  # mcq: trace | short | none (see model.data.mcq_target)
    eval_fraction: float = 0.0  # mcq: clips held out by hash (the evaluation's split) are left out

    @property
    def name(self) -> str:
        return self.family or self.kind


# Files ---------------------------------------------------------------------------------------------
def _fs(url: str):
    import fsspec

    return fsspec.core.url_to_fs(url)


def list_shards(spec: SourceSpec) -> list[str]:
    """The source's files, sorted (one shard each)."""
    fs, root = _fs(spec.path)
    if spec.kind == "mcq" and fs.isdir(f"{root}/corpus"):  # a DataFlux run folder
        from storage.run_folder import RunFolder

        run = RunFolder(spec.path)
        if run.table("corpus").exists():
            files = run.table("corpus").files(spec.version)
            if not files:
                raise FileNotFoundError(f"{spec.path} has no corpus version {spec.version}")
            return sorted(files)
    protocol = spec.path.split("://", 1)[0] + "://" if "://" in spec.path else ""
    if fs.isfile(root):
        return [spec.path]
    if fs.isfile(f"{root}/state.json"):  # datasets.save_to_disk
        state = json.loads(fs.cat_file(f"{root}/state.json"))
        return [f"{spec.path.rstrip('/')}/{f['filename']}" for f in state["_data_files"]]
    files = sorted(f for f in fs.find(root) if f.endswith(SUFFIXES) and not f.endswith(("state.json", "info.json")))
    if not files:
        raise FileNotFoundError(f"{spec.path} holds no Parquet, JSONL or Arrow files")
    return [protocol + f if protocol and not f.startswith(protocol) else f for f in files]


def read_rows(url: str, columns: list[str] | None = None) -> list[dict]:
    """A shard's rows (only `columns` where given; a column the shard lacks reads as None)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, path = _fs(url)
    if path.endswith(".parquet") or path.endswith(".arrow"):
        with fs.open(path, "rb") as f:
            if path.endswith(".parquet"):
                pf = pq.ParquetFile(f)
                have = set(pf.schema_arrow.names)
                table = pf.read(columns=[c for c in columns if c in have] if columns else None)
            else:
                table = pa.ipc.open_stream(f).read_all()
                if columns:
                    table = table.select([c for c in columns if c in table.column_names])
        rows = table.to_pylist()
    else:
        with fs.open(path, "rt") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    if columns:
        rows = [{c: r.get(c) for c in columns} for r in rows]
    return rows


def count_rows(url: str) -> int:
    import pyarrow.parquet as pq

    fs, path = _fs(url)
    if path.endswith(".parquet"):
        with fs.open(path, "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    if path.endswith(".arrow"):
        import pyarrow as pa

        with fs.open(path, "rb") as f:
            return pa.ipc.open_stream(f).read_all().num_rows
    with fs.open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _unit(*parts) -> float:
    """A stable number in [0, 1) from the parts."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16) / 16 ** 12


def shard_plan(spec: SourceSpec, url: str, key: str = "") -> list[int]:
    """The shard's row indices in stream order before shuffling: held-out rows dropped, hard rows repeated."""
    need = (["hard"] if spec.hard_weight != 1.0 else []) + (["clip_id"] if spec.eval_fraction else [])
    if not need:
        return list(range(count_rows(url)))
    plan = []
    for i, row in enumerate(read_rows(url, need)):
        if spec.eval_fraction and held_out(str(row["clip_id"]), spec.eval_fraction):
            continue
        weight = spec.hard_weight if row.get("hard") else 1.0
        plan += [i] * (int(weight) + (_unit(key, i) < weight - int(weight)))
    return plan


# Rows to samples -----------------------------------------------------------------------------------
def load_audio(value, base: str) -> np.ndarray:
    """Mono float32 at 16 kHz from bytes, a `datasets` audio dict, or a path (relative to the shard's folder)."""
    import soundfile as sf

    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        fs, path = _fs(value if "://" in str(value) or str(value).startswith("/") else f"{base}/{value}")
        data = fs.cat_file(path)
    wave, sr = sf.read(io.BytesIO(data), dtype="float32")
    wave = wave if wave.ndim == 1 else wave.mean(axis=1)
    if sr != SAMPLE_RATE:
        import soxr

        wave = soxr.resample(wave, sr, SAMPLE_RATE).astype(np.float32)
    return wave


def _first(row: dict, names: tuple[str, ...], what: str, kind: str):
    for n in names:
        if row.get(n) is not None:
            return row[n]
    raise ValueError(f"a {kind} row needs {what} in one of the columns {', '.join(names)}; it has {', '.join(row)}")


def to_sample(spec: SourceSpec, row: dict, url: str, index: int) -> Sample:
    base = url.rsplit("/", 1)[0]
    sid = str(row.get("id") or row.get("question_id") or f"{url}#{index}")
    kind = spec.kind
    if kind == "mcq":
        from dataflux.mcq import mcq_prompt

        target, think = mcq_target(row, spec.with_reasoning)
        return Sample(sid, str(row.get("clip_id", sid)), load_audio(row["audio"], base),
                      mcq_prompt(row["question"], list(row["options"])), target, spec.system or MCQ_SYSTEM,
                      row.get("node_path") or "", "mcq", think=think)
    if kind in ("asr", "caption"):
        columns = ("text", "transcript", "sentence", "reference") if kind == "asr" else ("caption", "text")
        target = str(_first(row, columns, "the target text", kind))
        audio = load_audio(_first(row, ("audio", "audio_path", "path"), "the audio", kind), base)
        system = spec.system or (ASR_SYSTEM if kind == "asr" else CAPTION_SYSTEM)
        return Sample(sid, sid, audio, spec.prompt or (ASR_PROMPT if kind == "asr" else CAPTION_PROMPT), target,
                      system, "", kind)
    if kind == "swift" or (kind == "text" and "messages" in row and row["messages"] is not None):
        system, prompt, target = _chat(row["messages"], sid)
        audios = list(row.get("audios") or [])
        tags = prompt.count("<audio>")
        if tags != len(audios) or len(audios) > 1:
            raise ValueError(f"sample {sid}: {tags} <audio> tags and {len(audios)} audios; one audio per sample "
                             "(or none) is supported")
        if kind == "text" and audios:
            raise ValueError(f"sample {sid}: a text source holds audio; use kind `swift`")
        audio = load_audio(audios[0], base) if audios else None
        return Sample(sid, sid, audio, prompt.replace("<audio>", ""), target, spec.system or system, "",
                      "swift" if audio is not None else "text")
    if kind == "text":
        prompt = _first(row, ("instruction", "prompt", "question"), "the instruction", kind)
        if row.get("input"):
            prompt = f"{prompt}\n\n{row['input']}"
        target = _first(row, ("output", "response", "answer"), "the response", kind)
        return Sample(sid, sid, None, str(prompt), str(target), spec.system, "", "text")
    raise ValueError(f"unknown source kind {kind!r}: choose {', '.join(KINDS)}")


def _chat(messages: list[dict], sid: str) -> tuple[str | None, str, str]:
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    turns = [m for m in messages if m["role"] != "system"]
    if [m["role"] for m in turns] != ["user", "assistant"]:
        raise ValueError(f"sample {sid}: one user turn then one assistant turn expected, got "
                         f"{[m['role'] for m in turns]}")
    return system, turns[0]["content"], turns[1]["content"]


# The global order --------------------------------------------------------------------------------
class SourceStream:
    """One source's infinite stream: position k -> (shard url, row index); raw rows of the current block."""

    def __init__(self, spec: SourceSpec, seed: int, shuffle_buffer: int, index: int = 0):
        self.spec, self.buffer = spec, max(1, shuffle_buffer)
        self.seed = f"{seed}|{index}"  # the order depends on the seed and the source's place, not on where it lives
        self.shards = list_shards(spec)
        self.keys = {u: f"{self.seed}|{i}" for i, u in enumerate(self.shards)}
        self.sizes = {u: len(shard_plan(spec, u, self.keys[u])) for u in self.shards}
        self.length = sum(self.sizes.values())
        if not self.length:
            raise ValueError(f"source {spec.path} ({spec.kind}) holds no rows")
        self._block_key, self._block, self._rows = None, [], {}
        self.shards_read = 0

    def _epoch_order(self, epoch: int) -> tuple[list[str], list[int]]:
        order = random.Random(f"{self.seed}|{epoch}").sample(self.shards, len(self.shards))
        starts, total = [], 0
        for u in order:
            starts.append(total)
            total += self.sizes[u]
        return order, starts

    def _build_block(self, epoch: int, block: int) -> None:
        order, starts = self._epoch_order(epoch)
        lo, hi = block * self.buffer, min((block + 1) * self.buffer, self.length)
        refs = []
        for i in range(bisect_right(starts, lo) - 1, len(order)):
            if starts[i] >= hi:
                break
            u = order[i]
            plan = shard_plan(self.spec, u, self.keys[u])
            random.Random(f"{self.keys[u]}|{epoch}").shuffle(plan)
            a, b = max(lo - starts[i], 0), min(hi - starts[i], len(plan))
            refs += [(u, r) for r in plan[a:b]]
        random.Random(f"{self.seed}|{epoch}|block{block}").shuffle(refs)
        self._block_key, self._block = (epoch, block), refs
        spanned = {u for u, _ in refs}
        self._rows = {u: rows for u, rows in self._rows.items() if u in spanned}

    def ref(self, k: int) -> tuple[str, int]:
        epoch, offset = divmod(k, self.length)
        key = (epoch, offset // self.buffer)
        if key != self._block_key:
            self._build_block(*key)
        return self._block[offset % self.buffer]

    def sample(self, k: int) -> Sample:
        url, row = self.ref(k)
        if url not in self._rows:
            self._rows[url] = read_rows(url)  # raw (undecoded) rows of the shards the current block spans
            self.shards_read += 1
        return to_sample(self.spec, self._rows[url][row], url, row)


class Mixture:
    """Global sample index g -> (source, position in that source): a smooth weighted round-robin of the
    ratios, replayed from 0 (integer arithmetic only, so it is cheap to fast-forward)."""

    def __init__(self, ratios: list[float]):
        if not ratios or min(ratios) < 0 or sum(ratios) <= 0:
            raise ValueError(f"source ratios must be >= 0 and not all 0: {ratios}")
        self.weights = [r / sum(ratios) for r in ratios]
        self.reset()

    def reset(self):
        self.g, self.credit, self.used = 0, [0.0] * len(self.weights), [0] * len(self.weights)

    def advance(self) -> tuple[int, int]:
        self.credit = [c + w for c, w in zip(self.credit, self.weights)]
        pick = max(range(len(self.weights)), key=lambda i: self.credit[i])
        self.credit[pick] -= 1
        k = self.used[pick]
        self.used[pick] += 1
        self.g += 1
        return pick, k

    def seek(self, g: int) -> None:
        if g < self.g:
            self.reset()
        while self.g < g:
            self.advance()


class StreamingDataset(torch.utils.data.IterableDataset):
    """Infinite stream of encoded micro-batches for one rank (see the module docstring for the order).

    Each item: the padded batch (input_ids, labels, attention_mask, and input_features/_mask when any
    sample has audio) plus `micro_batch` (its global index M), `skipped_too_long` and `families`."""

    def __init__(self, specs: list[SourceSpec], processor, batch_size: int, max_length: int, seed: int = 0,
                 shuffle_buffer: int = 1024, rank: int = 0, world: int = 1, start_micro_batch: int = 0):
        self.specs, self.processor, self.batch_size = list(specs), processor, batch_size
        self.max_length, self.seed, self.shuffle_buffer = max_length, seed, shuffle_buffer
        self.rank, self.world, self.start = rank, world, start_micro_batch
        if not self.specs:
            raise ValueError("no sources to train on")

    def micro_batches(self, worker: int = 0, workers: int = 1):
        """The global indices M this (rank, worker) produces, in order."""
        j = worker
        while True:
            yield self.start + j * self.world + self.rank
            j += workers

    def samples(self, m: int, streams: list[SourceStream], mixture: Mixture) -> list[tuple[str, Sample]]:
        mixture.seek(m * self.batch_size)
        out = []
        for _ in range(self.batch_size):
            source, k = mixture.advance()
            out.append((streams[source].spec.name, streams[source].sample(k)))
        return out

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        streams = [SourceStream(s, self.seed, self.shuffle_buffer, i) for i, s in enumerate(self.specs)]
        mixture = Mixture([s.ratio for s in self.specs])
        for m in self.micro_batches(worker, workers):
            yield self.encode(m, self.samples(m, streams, mixture))

    def encode(self, m: int, named: list[tuple[str, Sample]]) -> dict:
        from model.processing import SampleTooLong

        encoded, audios, families, skipped = [], [], {}, 0
        for family, s in named:
            try:
                encoded.append(self.processor.encode(s.prompt, s.audio, s.target, s.system, self.max_length,
                                                     s.think))
            except SampleTooLong:
                skipped += 1
                continue
            if s.audio is not None:
                audios.append(s.audio)
            families[family] = families.get(family, 0) + 1
        batch = self.processor.pad(encoded, "right") if encoded else {}
        if audios:
            batch.update(self.processor.features(audios))
        return {**batch, "micro_batch": m, "skipped_too_long": skipped, "families": families}


def loader(dataset: StreamingDataset, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """Workers decode; the DataLoader takes their micro-batches round-robin, which is the order above."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=num_workers,
                                       prefetch_factor=2 if num_workers else None,
                                       multiprocessing_context="fork" if num_workers else None)
