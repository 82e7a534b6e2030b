"""Load real weights into Eureka-Audio from checkpoint folders a user already has: the encoder from
any Whisper checkpoint (decoder keys ignored), the language model from any Qwen3 checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def read_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor in a checkpoint folder: safetensors (single or sharded) or PyTorch .bin files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    files = sorted(folder.glob("*.safetensors"))
    state = {}
    if files:
        from safetensors.torch import load_file

        for f in files:
            state.update(load_file(str(f)))
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise FileNotFoundError(f"{folder} holds no *.safetensors or pytorch_model*.bin weights")
    for f in bins:
        state.update(torch.load(f, map_location="cpu", weights_only=True))  # never unpickles code
    return state


def _load(module: torch.nn.Module, weights: dict[str, torch.Tensor], what: str, folder) -> dict:
    own = module.state_dict()
    missing = sorted(k for k in own if k not in weights)
    if missing:
        raise ValueError(f"{folder} is not a {what} checkpoint for this config: {len(missing)} tensors missing, "
                         f"e.g. {missing[:3]}")
    wrong = [k for k in own if weights[k].shape != own[k].shape]
    if wrong:
        k = wrong[0]
        raise ValueError(f"{folder}: {k} has shape {tuple(weights[k].shape)}, the config needs {tuple(own[k].shape)}")
    module.load_state_dict({k: weights[k] for k in own}, strict=True)
    return {"loaded": len(own), "ignored": len(weights) - len(own)}


def load_whisper_encoder(model, folder: str | Path) -> dict:
    """From WhisperForConditionalGeneration (`model.encoder.*`), WhisperModel (`encoder.*`) or a bare
    encoder; the decoder's tensors are ignored."""
    state = read_state_dict(folder)
    for prefix in ("model.encoder.", "encoder.", ""):
        picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if "conv1.weight" in picked:
            info = _load(model.audio_tower.encoder, picked, "Whisper", folder)
            return info | {"ignored": len(state) - info["loaded"], "source": str(folder)}
    raise ValueError(f"{folder} holds no Whisper encoder (no conv1.weight under model.encoder., encoder. or the root)")


def load_language_model(model, folder: str | Path) -> dict:
    """From a Qwen3 causal-LM checkpoint (`model.*` and `lm_head.weight`, which tied checkpoints omit)."""
    state = read_state_dict(folder)
    lm = model.language_model
    if "lm_head.weight" not in state and lm.config.tie_word_embeddings and "model.embed_tokens.weight" in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    config = Path(folder) / "config.json"
    if config.exists():
        kind = json.loads(config.read_text()).get("model_type")
        if kind and kind != lm.config.model_type:
            raise ValueError(f"{folder} holds a {kind} model; the config's language model is {lm.config.model_type}")
    info = _load(lm, state, "Qwen3", folder)
    if lm.config.tie_word_embeddings:
        lm.tie_weights()
    return info | {"source": str(folder)}
