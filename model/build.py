"""Build a model and its processor from a name: `tiny`, `full` (or a config JSON) with real weights
from Whisper / Qwen3 folders, or a saved Eureka-Audio checkpoint folder."""

from __future__ import annotations

import json
from pathlib import Path


def is_checkpoint(path: str) -> bool:
    config = Path(path) / "config.json"
    return config.exists() and json.loads(config.read_text()).get("model_type") == "eureka_audio"


def build(model: str = "tiny", whisper: str | None = None, qwen3: str | None = None, seed: int = 0):
    import torch
    from transformers import AutoProcessor

    from model.modeling import EurekaAudioForConditionalGeneration

    if is_checkpoint(model):
        return EurekaAudioForConditionalGeneration.from_pretrained(model), AutoProcessor.from_pretrained(model)
    if model == "tiny":
        from model.tiny import tiny_model_and_processor

        return tiny_model_and_processor(seed=seed)
    from model.info import load_config
    from model.processing import IM_END, EurekaAudioProcessor

    if not qwen3:
        raise ValueError(f"model {model!r} needs a tokenizer: give `qwen3:` a Qwen3 checkpoint folder")
    from transformers import AutoTokenizer

    config = load_config(model)
    processor = EurekaAudioProcessor.for_config(config, AutoTokenizer.from_pretrained(qwen3))
    for key, value in processor.token_ids().items():
        setattr(config, key, value)
    config.eos_token_id = processor.tokenizer.convert_tokens_to_ids(IM_END)
    torch.manual_seed(seed)
    m = EurekaAudioForConditionalGeneration(config)
    from model.weights import load_language_model, load_whisper_encoder

    load_language_model(m, qwen3)
    if whisper:
        load_whisper_encoder(m, whisper)
    if len(processor.tokenizer) > m.get_input_embeddings().num_embeddings:
        m.language_model.resize_token_embeddings(len(processor.tokenizer))
    return m, processor
