"""A tiny Eureka-Audio (same structure, toy sizes) and a byte-level tokenizer that needs no download:
for tests, CPU training runs and benchmarks."""

from __future__ import annotations

from model.configuration import EurekaAudioConfig
from model.processing import IM_END, SPECIAL_TOKENS


def byte_tokenizer():
    """256 byte tokens plus the chat and audio special tokens; no merges, nothing to train or fetch."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": [t for t in SPECIAL_TOKENS if t != IM_END]})
    return fast


def tiny_config(vocab_size: int = 272, **overrides) -> EurekaAudioConfig:
    audio = dict(num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                 decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, max_source_positions=100,
                 vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    text = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
                tie_word_embeddings=True)
    settings = dict(expert_hidden_size=48, num_experts=4, experts_per_token=2, num_shared_experts=1)
    settings.update(overrides)
    return EurekaAudioConfig(audio_config=audio, text_config=text, **settings)


def tiny_model_and_processor(seed: int = 0, **overrides):
    import torch

    from model.modeling import EurekaAudioForConditionalGeneration
    from model.processing import EurekaAudioProcessor

    tokenizer = byte_tokenizer()
    config = tiny_config(vocab_size=len(tokenizer), **overrides)
    processor = EurekaAudioProcessor.for_config(config, tokenizer)
    for key, value in processor.token_ids().items():
        setattr(config, key, value)
    config.text_config.eos_token_id = config.eos_token_id = tokenizer.convert_tokens_to_ids(IM_END)
    config.text_config.pad_token_id = config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    return EurekaAudioForConditionalGeneration(config), processor
