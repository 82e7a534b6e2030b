"""Fine-tune Eureka-Audio on corpus versions: one recipe, top to bottom.

data (corpus versions through `datasets`, mixed by ratio, length-grouped) -> chat samples (too long:
skipped and counted) -> freeze preset / LoRA -> AdamW with a learning rate per component, warmup +
cosine -> forward/backward with gradient accumulation, the loss normalised per label token over the
whole accumulation window -> TensorBoard + JSONL logs -> Hugging Face checkpoints with the full
training state (optimiser, scheduler, RNG, data position) for an exact resume.
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import get_cosine_schedule_with_warmup

from dataflux.settings import Overrides, Section, load, parse_assignments
from model.data import CorpusSpec, Sample, length_grouped, mix, read_corpus
from model.modeling import FREEZE_PRESETS
from model.processing import IGNORE, SampleTooLong


class LoraSettings(Section):
    """LoRA on the language model (merged into the saved checkpoints)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


class TrainConfig(Section):
    model: str = "tiny"  # tiny | full | a config JSON | an Eureka-Audio checkpoint folder
    whisper: str | None = None  # Whisper checkpoint folder for the encoder (with full/config models)
    qwen3: str | None = None  # Qwen3 checkpoint folder for the LM and the tokenizer
    corpora: tuple[CorpusSpec, ...] = ()  # [{run_dir, version, ratio, system}]
    output_dir: str = "runs/train"
    freeze: Literal[FREEZE_PRESETS] = "full"  # adapter-only (the paper's stage 1) | full (stage 2 and SFT)
    # per component; a component left out gets 1e-4
    lr: dict[Literal["audio_tower", "adapter", "language_model"], float] = {
        "audio_tower": 2e-5, "adapter": 1e-3, "language_model": 1e-4}
    weight_decay: float = 0.0
    warmup_steps: int = 10
    max_steps: int = 100
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 2048
    with_reasoning: bool = True
    eval_fraction: float = 0.1
    seed: int = 0
    lora: LoraSettings | None = None  # none: no LoRA; `lora: {}` is LoRA with the defaults
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    log_every: int = 1
    save_every: int = 0  # 0: only the final checkpoint


def load_train_config(path: str | Path, overrides: Overrides = None, **values) -> TrainConfig:
    """The training YAML with `key=value` overrides (as `dataflux.config.load_config`); `values` are
    more overrides by keyword (None: left as the file has it)."""
    merged = parse_assignments(overrides) if isinstance(overrides, list) else dict(overrides or {})
    merged.update({k: v for k, v in values.items() if v is not None})
    return load(TrainConfig, path, merged)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG in plain types and tensors, so the state loads with `weights_only=True` (no pickled code)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, gauss_np = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss_np))
    torch.set_rng_state(state["torch"])


class Trainer:
    def __init__(self, config: TrainConfig, corpora: list[CorpusSpec] | None = None):
        from model.build import build

        self.cfg = config
        seed_everything(config.seed)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.processor = build(config.model, config.whisper, config.qwen3, config.seed)
        self.model.set_trainable(config.freeze)
        if config.lora:
            self._add_lora(config.lora)
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model.to(self.device).train()
        self.specs = corpora or list(config.corpora)
        if not self.specs:
            raise ValueError("no corpora to train on: set `corpora: [{run_dir: ...}]` or pass --corpus")
        self.data = [read_corpus(s, "train", config.eval_fraction, config.with_reasoning) for s in self.specs]
        if not any(self.data):
            raise ValueError("the corpora hold no training samples (all held out, or empty)")
        groups = self.model.parameter_groups()
        self.optimizer = torch.optim.AdamW(
            [{"params": p, "lr": config.lr.get(name, 1e-4), "name": name} for name, p in groups.items() if p],
            weight_decay=config.weight_decay)
        # transformers' warmup (step / warmup_steps, so the first step's rate is 0) then cosine to 0 at max_steps
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, config.warmup_steps, max(1, config.max_steps))
        self.state = {"step": 0, "epoch": 0, "batch_index": 0, "skipped_too_long": 0, "samples_seen": 0}
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)

    def _add_lora(self, lora: LoraSettings) -> None:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                         target_modules=list(lora.target_modules))
        self.model.language_model = get_peft_model(self.model.language_model, cfg)

    # Data --------------------------------------------------------------------------------------------
    def batches(self, epoch: int) -> list[list[Sample]]:
        order = mix(self.data, [s.ratio for s in self.specs], self.cfg.seed, epoch)
        if self.cfg.group_by_length:
            return length_grouped(order, self.cfg.batch_size, key=lambda s: s.length_hint, seed=self.cfg.seed + epoch)
        return [order[i:i + self.cfg.batch_size] for i in range(0, len(order), self.cfg.batch_size)]

    def encode(self, samples: list[Sample]) -> dict | None:
        kept, encoded = [], []
        for s in samples:
            try:
                encoded.append(self.processor.encode(s.prompt, s.audio, s.target, s.system, self.cfg.max_length))
                kept.append(s)
            except SampleTooLong:
                self.state["skipped_too_long"] += 1  # never truncated inside audio: skipped, counted
        if not kept:
            return None
        batch = self.processor.pad(encoded, "right")
        batch.update(self.processor.features([s.audio for s in kept]))
        return {k: v.to(self.device) for k, v in batch.items()}

    def next_micro_batches(self) -> list[dict]:
        """The next `grad_accum` micro-batches, advancing (and recording) the data position."""
        out, empty_epochs = [], 0
        while len(out) < self.cfg.grad_accum:
            batches = self.batches(self.state["epoch"])
            if self.state["batch_index"] >= len(batches):
                self.state["epoch"] += 1
                self.state["batch_index"] = 0
                empty_epochs = empty_epochs + 1 if not out else 0
                if empty_epochs > 1:
                    raise ValueError(f"no sample fits max_length={self.cfg.max_length}; "
                                     f"{self.state['skipped_too_long']} skipped as too long")
                continue
            samples = batches[self.state["batch_index"]]
            self.state["batch_index"] += 1
            self.state["samples_seen"] += len(samples)
            encoded = self.encode(samples)
            if encoded is not None:
                out.append(encoded)
        return out

    # Steps -------------------------------------------------------------------------------------------
    def step(self) -> dict:
        model = self.model
        start = time.perf_counter()
        micro = self.next_micro_batches()
        window_tokens = max(1, sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro))
        ce_total, aux_total, z_total, loads, tokens = 0.0, 0.0, 0.0, [], 0
        self.optimizer.zero_grad(set_to_none=True)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else _null()
        for b in micro:
            labels = b.pop("labels")
            with autocast:
                out = model(**b)
            logits = out.logits.float()
            ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                   labels[:, 1:].reshape(-1), ignore_index=IGNORE, reduction="sum")
            c = model.config
            router = c.router_aux_loss_coef * out.aux_loss + c.router_z_loss_coef * out.z_loss
            loss = ce / window_tokens + router / len(micro)
            loss.backward()
            ce_total += ce.item()
            aux_total += out.aux_loss.item() / len(micro)
            z_total += out.z_loss.item() / len(micro)
            loads.append(out.expert_load.float().cpu())
            tokens += int(b["attention_mask"].sum())
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        self.optimizer.step()
        self.scheduler.step()
        self.state["step"] += 1
        seconds = time.perf_counter() - start
        return {"step": self.state["step"], "loss": ce_total / window_tokens, "aux_loss": aux_total, "z_loss": z_total,
                "expert_load": torch.stack(loads).mean(0).tolist(), "grad_norm": grad_norm,
                "lr": {g["name"]: g["lr"] for g in self.optimizer.param_groups}, "tokens_per_s": tokens / seconds,
                "label_tokens": window_tokens, "epoch": self.state["epoch"]}

    def train(self) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.out / "tensorboard"))
        log = open(self.out / "train_log.jsonl", "a")
        try:
            while self.state["step"] < self.cfg.max_steps:
                record = self.step()
                log.write(json.dumps(record) + "\n")
                log.flush()
                s = record["step"]
                if s % self.cfg.log_every == 0:
                    for k in ("loss", "aux_loss", "z_loss", "grad_norm", "tokens_per_s"):
                        writer.add_scalar(f"train/{k}", record[k], s)
                    for name, lr in record["lr"].items():
                        writer.add_scalar(f"lr/{name}", lr, s)
                    for e, load in enumerate(record["expert_load"]):
                        writer.add_scalar(f"expert_load/{e}", load, s)
                if self.cfg.save_every and s % self.cfg.save_every == 0 and s < self.cfg.max_steps:
                    self.save(self.out / f"checkpoint-{s}")
        finally:
            writer.close()
            log.close()
        final = self.save(self.out / "final")
        summary = {"checkpoint": str(final), "steps": self.state["step"], "epochs": self.state["epoch"],
                   "samples_seen": self.state["samples_seen"], "skipped_too_long": self.state["skipped_too_long"],
                   "corpora": [asdict(s) for s in self.specs], "config": self.cfg.model_dump(mode="json")}
        (self.out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary

    # Checkpoints -------------------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """A Hugging Face folder (LoRA merged into a copy) plus `training_state.pt` for resuming."""
        folder.mkdir(parents=True, exist_ok=True)
        model = self.model
        if self.cfg.lora:
            model = copy.deepcopy(self.model)
            model.language_model = model.language_model.merge_and_unload()
        model.save_pretrained(folder)
        self.processor.save_pretrained(folder)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "rng": rng_state(), "state": dict(self.state),
                    "config": self.cfg.model_dump(mode="json")}, folder / "training_state.pt")
        return folder

    def resume(self, folder: str | Path) -> None:
        saved = torch.load(Path(folder) / "training_state.pt", map_location=self.device, weights_only=True)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state.update(saved["state"])
        set_rng_state(saved["rng"])


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train(config: TrainConfig, corpora: list[CorpusSpec] | None = None, resume_from: str | None = None) -> dict:
    trainer = Trainer(config, corpora)
    if resume_from:
        trainer.resume(resume_from)
    return trainer.train()
