"""Parameter counts of a configuration, computed on the meta device: no weights are allocated."""

from __future__ import annotations

import json
from pathlib import Path

PRESETS = {"full": Path(__file__).parent / "configs" / "eureka-audio-full.json"}


def load_config(name_or_path: str):
    from model.configuration import EurekaAudioConfig

    if name_or_path == "tiny":
        from model.tiny import tiny_config

        return tiny_config()
    path = PRESETS.get(name_or_path, Path(name_or_path))
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"model config {name_or_path} not found (a JSON file, a checkpoint folder, "
                                f"or one of: tiny, {', '.join(PRESETS)})")
    return EurekaAudioConfig(**json.loads(path.read_text()))


def _count(params) -> int:
    seen, total = set(), 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def parameter_counts(config) -> dict[str, int]:
    import torch

    from model.modeling import EurekaAudioForConditionalGeneration

    with torch.device("meta"):
        model = EurekaAudioForConditionalGeneration(config)
    a = model.adapter
    expert = _count(a.experts[0].parameters())
    adapter_total = _count(a.parameters())
    active = adapter_total - expert * (config.num_experts - config.experts_per_token)
    return {"total": _count(model.parameters()), "audio_encoder": _count(model.audio_tower.parameters()),
            "adapter_total": adapter_total, "adapter_active_per_token": active,
            "language_model": _count(model.language_model.parameters())}


def describe(counts: dict[str, int]) -> str:
    width = max(map(len, counts))
    return "\n".join(f"{k.ljust(width)}  {v:>15,}  ({v / 1e9:.3f} B)" for k, v in counts.items())
