"""Fine-tune Eureka-Audio: one recipe, top to bottom, on one process or many.

data: `corpora` (DataFlux corpus versions held in memory, mixed by ratio, length-grouped) or `sources`
(every family the paper trains on, streamed a shard at a time by DataLoader workers: model/stream.py)
-> chat samples (too long: skipped and counted) -> freeze preset / LoRA -> AdamW with a learning rate per
component, warmup + cosine -> forward/backward with gradient accumulation, the loss normalised per label
token over the whole accumulation window of every rank -> TensorBoard + JSONL logs -> Hugging Face
checkpoints plus the training state (model and optimiser through torch.distributed.checkpoint, so they
load on another number of ranks; scheduler, RNG, data position) for an exact resume.

Many processes (`torchrun` or `dataflux train --nproc N`; gloo on CPU, NCCL on GPUs): `parallel: ddp`
(DistributedDataParallel) or `parallel: fsdp` (FSDP2 `fully_shard` per encoder/decoder layer, then the
whole model). Each rank takes its own micro-batches of the one global order.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import gc
import json
import os
import random
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import get_cosine_schedule_with_warmup

from dataflux.settings import Overrides, Section, load, parse_assignments
from model.data import CorpusSpec, Reasoning, Sample, length_grouped, mix, read_corpus
from model.modeling import FREEZE_PRESETS
from model.processing import IGNORE, SampleTooLong
from model.stream import SourceSpec, StreamingDataset, loader


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
    corpora: tuple[CorpusSpec, ...] = ()  # [{run_dir, version, ratio, system}], held in memory
    sources: tuple[SourceSpec, ...] = ()  # [{path, kind, ratio, family, ...}], streamed (model/stream.py)
    streaming: bool | None = None  # None: stream when `sources` are given or with many ranks (corpora join them)
    shuffle_buffer: int = 1024  # samples per shuffled block of a source's stream
    num_workers: int = 0  # DataLoader worker processes decoding the stream (0: in the training process)
    parallel: Literal["ddp", "fsdp"] = "ddp"  # with more than one rank
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
    with_reasoning: bool | Reasoning = "short"  # trace | short | none: what an mcq target holds (data.mcq_target)
    eval_fraction: float = 0.1
    seed: int = 0
    lora: LoraSettings | None = None  # none: no LoRA; `lora: {}` is LoRA with the defaults
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    log_every: int = 1
    save_every: int = 0  # 0: only the final checkpoint
    dist_timeout_s: float = 600  # a collective waiting longer (a rank gone or stuck) fails instead of hanging


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


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


class Trainer:
    def __init__(self, config: TrainConfig, corpora: list[CorpusSpec] | None = None):
        from model.build import build

        self.cfg = config
        self.rank, self.world, local_rank = dist_env()
        self.device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
        if self.world > 1 and not torch.distributed.is_initialized():
            timeout = datetime.timedelta(seconds=config.dist_timeout_s)
            if self.device.type == "cuda":  # NCCL binds this rank to its own GPU from the start
                torch.cuda.set_device(self.device)
                torch.distributed.init_process_group("nccl", timeout=timeout, device_id=self.device)
            else:
                torch.distributed.init_process_group("gloo", timeout=timeout)
        self.failed = False
        seed_everything(config.seed)
        self.model, self.processor = build(config.model, config.whisper, config.qwen3, config.seed)
        self.model.set_trainable(config.freeze)
        if config.lora:
            if self.world > 1 and config.parallel == "fsdp":
                raise ValueError("LoRA with FSDP is not supported: use parallel: ddp")
            self._add_lora(config.lora)
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model.to(self.device).train()
        self.specs = corpora or list(config.corpora)
        self.streaming = config.streaming if config.streaming is not None else bool(config.sources) or self.world > 1
        if self.streaming:
            self.sources = [SourceSpec(c.run_dir, "mcq", c.ratio, "paralinguistic", c.system, version=c.version,
                                       with_reasoning=config.with_reasoning, eval_fraction=config.eval_fraction)
                            for c in self.specs] + list(config.sources)
            if not self.sources:
                raise ValueError("no data to train on: set `sources: [{path: ..., kind: ...}]` or `corpora`")
            self.data = []
        else:
            if not self.specs:
                raise ValueError("no corpora to train on: set `corpora: [{run_dir: ...}]` or pass --corpus")
            self.data = [read_corpus(s, "train", config.eval_fraction, config.with_reasoning) for s in self.specs]
            if not any(self.data):
                raise ValueError("the corpora hold no training samples (all held out, or empty)")
        self.wrapped = self._parallelise()
        groups = self.model.parameter_groups()
        self.optimizer = torch.optim.AdamW(
            [{"params": p, "lr": config.lr.get(name, 1e-4), "name": name} for name, p in groups.items() if p],
            weight_decay=config.weight_decay)
        # transformers' warmup (step / warmup_steps, so the first step's rate is 0) then cosine to 0 at max_steps
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, config.warmup_steps, max(1, config.max_steps))
        self.state = {"step": 0, "epoch": 0, "batch_index": 0, "skipped_too_long": 0, "samples_seen": 0,
                      "micro_batch": 0, "families": {}}
        self._stream = None
        self.out = Path(config.output_dir)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)

    def _parallelise(self):
        """The module forward and backward run through: the model itself, DDP around it, or the model
        sharded in place by FSDP2."""
        if self.world == 1:
            return self.model
        if self.cfg.parallel == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            # routed experts a micro-batch does not pick, and the encoder on text-only batches, get no gradient
            return DistributedDataParallel(self.model, find_unused_parameters=True,
                                           device_ids=[self.device.index] if self.device.type == "cuda" else None)
        from torch.distributed.fsdp import fully_shard

        # every routed expert takes part in every forward (on zero tokens when unpicked), so each rank
        # reduces the same gradients
        self.model.adapter.register_forward_hook(_touch_every_expert)
        # FSDP gathers and reduces a layer's parameters only on the ranks that run it: on a text-only
        # micro-batch the encoder and adapter run anyway, on a short silent clip, adding exactly zero
        silence = np.zeros(self.model.config.samples_per_token, dtype=np.float32)
        self._silence = {k: v.to(self.device) for k, v in self.processor.features([silence]).items()}
        self._text_only = False
        self.model.language_model.register_forward_pre_hook(self._audio_path_for_nothing, with_kwargs=True)
        for module in self.model.modules():
            if type(module).__name__ in self.model._no_split_modules:
                fully_shard(module)
        fully_shard(self.model)
        return self.model

    def _audio_path_for_nothing(self, module, args, kwargs):
        """(FSDP, a text-only micro-batch) Inside the model's forward, before the language model: the silent
        clip through encoder and adapter, times zero, added to the text embeddings, so every rank runs the
        same collectives forward and backward; the loss and the language model's gradients are unchanged and
        the encoder and adapter get zero gradients (set to None when no rank had audio: `step`)."""
        if not self._text_only:
            return None
        embeds, out = self.model.encode_audio(self._silence["input_features"],
                                              self._silence.get("input_features_mask"))
        zero = (embeds.float().sum() + out.aux_loss + out.z_loss) * 0
        kwargs["inputs_embeds"] = kwargs["inputs_embeds"] + zero.to(kwargs["inputs_embeds"].dtype)
        return args, kwargs

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
                encoded.append(self.processor.encode(s.prompt, s.audio, s.target, s.system, self.cfg.max_length,
                                                     s.think))
                kept.append(s)
            except SampleTooLong:
                self.state["skipped_too_long"] += 1  # never truncated inside audio: skipped, counted
        if not kept:
            return None
        batch = self.processor.pad(encoded, "right")
        audios = [s.audio for s in kept if s.audio is not None]
        if audios:  # a text-only batch has no features: the audio encoder is not called
            batch.update(self.processor.features(audios))
        return {k: v.to(self.device) for k, v in batch.items()}

    def dataset(self) -> StreamingDataset:
        """This rank's stream, from the recorded data position."""
        return StreamingDataset(self.sources, self.processor, self.cfg.batch_size, self.cfg.max_length,
                                self.cfg.seed, self.cfg.shuffle_buffer, self.rank, self.world,
                                self.state["micro_batch"])

    def next_micro_batches(self) -> list[dict]:
        """The next `grad_accum` micro-batches, advancing (and recording) the data position."""
        if self.streaming:
            return self._next_streamed()
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

    def _next_streamed(self) -> list[dict]:
        if self._stream is None:
            self._stream = iter(loader(self.dataset(), self.cfg.num_workers))
        out, empty = [], 0
        while len(out) < self.cfg.grad_accum:
            item = next(self._stream)
            self.state["skipped_too_long"] += item.pop("skipped_too_long")
            families = item.pop("families")
            for name, n in families.items():
                self.state["families"][name] = self.state["families"].get(name, 0) + n
            self.state["samples_seen"] += sum(families.values())
            item.pop("micro_batch")
            if "input_ids" not in item:
                if self.world > 1:
                    raise ValueError(f"a whole micro-batch is longer than max_length={self.cfg.max_length}; "
                                     "raise max_length (ranks cannot skip a micro-batch on their own)")
                empty += 1
                if empty > 100:
                    raise ValueError(f"no sample fits max_length={self.cfg.max_length}; "
                                     f"{self.state['skipped_too_long']} skipped as too long")
                continue
            out.append({k: v.to(self.device) for k, v in item.items()})
        self.state["micro_batch"] += self.cfg.grad_accum * self.world  # the next global micro-batch index
        return out

    # Steps -------------------------------------------------------------------------------------------
    def _all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def _sync(self, last: bool):
        """Gradients are reduced across ranks only after the last micro-batch of the window."""
        if self.world == 1:
            return contextlib.nullcontext()
        if self.cfg.parallel == "ddp":
            return contextlib.nullcontext() if last else self.wrapped.no_sync()
        self.wrapped.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def step(self) -> dict:
        model = self.model
        start = time.perf_counter()
        micro = self.next_micro_batches()
        local_tokens = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro)
        local_audio = sum("input_features" in b for b in micro)
        window_tokens, window_audio = self._all_sum([local_tokens, local_audio])
        window_tokens = max(1, int(window_tokens))  # every rank's label tokens
        fsdp = self.world > 1 and self.cfg.parallel == "fsdp"
        ce_total, aux_total, z_total, loads, tokens = 0.0, 0.0, 0.0, [], 0
        self.optimizer.zero_grad(set_to_none=True)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else _null()
        c = model.config
        for i, b in enumerate(micro):
            labels = b.pop("labels")
            with self._sync(i == len(micro) - 1):
                self._text_only = fsdp and "input_features" not in b
                with autocast:
                    out = self.wrapped(**b)
                self._text_only = False
                logits = out.logits.float()
                ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                       labels[:, 1:].reshape(-1), ignore_index=IGNORE,
                                                       reduction="sum")
                loss = ce / window_tokens * self.world  # ranks' gradients are averaged: the sum over ranks / tokens
                if out.aux_loss is not None:  # a text-only batch has no router
                    router = c.router_aux_loss_coef * out.aux_loss + c.router_z_loss_coef * out.z_loss
                    loss = loss + router / len(micro)
                    aux_total += out.aux_loss.item() / len(micro)
                    z_total += out.z_loss.item() / len(micro)
                    loads.append(out.expert_load.float().cpu())
                loss.backward()
            ce_total += ce.item()
            tokens += int(b["attention_mask"].sum())
        if fsdp and not window_audio:  # no rank had audio: the encoder and adapter are left alone, as on one
            for p in [*self.model.audio_tower.parameters(), *self.model.adapter.parameters()]:  # process
                p.grad = None
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.state["step"] += 1
        seconds = time.perf_counter() - start
        ce_total, aux_total, z_total, tokens = self._all_sum([ce_total, aux_total, z_total, tokens])
        n = self.world
        return {"step": self.state["step"], "loss": ce_total / window_tokens, "aux_loss": aux_total / n,
                "z_loss": z_total / n, "expert_load": torch.stack(loads).mean(0).tolist() if loads else [],
                "grad_norm": grad_norm, "lr": {g["name"]: g["lr"] for g in self.optimizer.param_groups},
                "tokens_per_s": tokens / seconds, "label_tokens": window_tokens, "epoch": self.state["epoch"]}

    def train(self) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        main = self.rank == 0
        writer = SummaryWriter(str(self.out / "tensorboard")) if main else None
        log = open(self.out / "train_log.jsonl", "a") if main else None
        try:
            while self.state["step"] < self.cfg.max_steps:
                record = self.step()
                s = record["step"]
                if main:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if main and s % self.cfg.log_every == 0:
                    for k in ("loss", "aux_loss", "z_loss", "grad_norm", "tokens_per_s"):
                        writer.add_scalar(f"train/{k}", record[k], s)
                    for name, lr in record["lr"].items():
                        writer.add_scalar(f"lr/{name}", lr, s)
                    for e, load in enumerate(record["expert_load"]):
                        writer.add_scalar(f"expert_load/{e}", load, s)
                if self.cfg.save_every and s % self.cfg.save_every == 0 and s < self.cfg.max_steps:
                    self.save(self.out / f"checkpoint-{s}")
        finally:
            if main:
                writer.close()
                log.close()
        final = self.save(self.out / "final")
        seen = self._all_sum([self.state["samples_seen"], self.state["skipped_too_long"]])
        summary = {"checkpoint": str(final), "steps": self.state["step"], "epochs": self.state["epoch"],
                   "samples_seen": int(seen[0]), "skipped_too_long": int(seen[1]), "world_size": self.world,
                   "corpora": [asdict(s) for s in self.specs], "config": self.cfg.model_dump(mode="json")}
        if self.streaming:
            summary["sources"] = [asdict(s) for s in self.sources]
            summary["families_rank0"] = self.state["families"]
        if main:
            (self.out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary

    # Checkpoints -------------------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """A Hugging Face folder (LoRA merged into a copy; rank 0 writes it), the model and optimiser as a
        torch.distributed.checkpoint in `dcp/` (every rank writes its shard), and `training_state.pt`."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

        folder.mkdir(parents=True, exist_ok=True)
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        with warnings.catch_warnings():  # one process: dcp says it saves without a process group, as meant
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(folder / "dcp"))
        full = None
        if self.world > 1 and self.cfg.parallel == "fsdp":  # every rank takes part in gathering the weights
            full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.rank == 0:
            model = self.model
            if self.cfg.lora:
                model = copy.deepcopy(self.model)
                model.language_model = model.language_model.merge_and_unload()
            model.save_pretrained(folder, state_dict=full)
            self.processor.save_pretrained(folder)
            torch.save({"scheduler": self.scheduler.state_dict(), "rng": rng_state(), "state": dict(self.state),
                        "world_size": self.world, "config": self.cfg.model_dump(mode="json")},
                       folder / "training_state.pt")
        if self.world > 1:
            torch.distributed.barrier()
        return folder

    def resume(self, folder: str | Path) -> None:
        """Continue from a checkpoint, saved on this or another number of ranks."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        saved = torch.load(Path(folder) / "training_state.pt", map_location="cpu", weights_only=True)
        if "model" in saved:  # a checkpoint from before model and optimiser moved to dcp/
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
        else:
            model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
            state = {"model": model_sd, "optimizer": optim_sd}
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="torch.distributed is disabled")
                dcp.load(state, checkpoint_id=str(Path(folder) / "dcp"))
            set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                           optim_state_dict=state["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state.update(saved["state"])
        self._stream = None  # the stream restarts at the recorded global micro-batch
        set_rng_state(saved["rng"])

    def close(self) -> None:
        """Leaves the process group, except after a failure: destroying it waits on peers that may be gone
        (a known hang), and the rank is about to exit non-zero anyway, so torchrun tears the others down."""
        if self.world > 1 and torch.distributed.is_initialized() and not self.failed:
            # The process group's destructor joins gloo's worker threads while holding the GIL, and a worker
            # freeing a finished collective's tensors takes the GIL: freed at the wrong moment, the rank waits
            # for ever (seen: ~Reducer -> ~ProcessGroupGloo -> thread join, the worker in ~AsyncAllreduceWork
            # waiting for the GIL). So the last collective has no tensors, the workers get a moment (GIL
            # released) to free the earlier ones, and the group is freed here, not whenever DDP is.
            torch.distributed.barrier()
            time.sleep(1)
            torch.distributed.destroy_process_group()
            self.wrapped = self.model  # DDP's reducer holds the group
            gc.collect()


def _touch_every_expert(module, args, output):
    x = args[0]
    zero = sum(expert(x[:0]).sum() for expert in module.experts)
    output.hidden_states = output.hidden_states + zero
    return output


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train(config: TrainConfig, corpora: list[CorpusSpec] | None = None, resume_from: str | None = None) -> dict:
    trainer = Trainer(config, corpora)
    try:
        if resume_from:
            trainer.resume(resume_from)
        return trainer.train()
    except BaseException:
        trainer.failed = True
        raise
    finally:
        trainer.close()
