"""The transformers Whisper backend loads a user's local checkpoint folder (here a tiny random one
built from config, with the bundled tiny.en tokenizer): no hub, no network."""

import json

import numpy as np
import pytest

from dataflux.annotate.asr import AsrConfig, Whisper
from dataflux.annotate.base import ModelLoadError
from dataflux.models import whisper_model_path


@pytest.fixture(scope="module")
def tiny_whisper_folder(tmp_path_factory):
    import torch
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizerFast)

    tok = WhisperTokenizerFast(tokenizer_file=str(whisper_model_path("tiny.en") + "/tokenizer.json"))
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = WhisperConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, num_mel_bins=80, max_target_positions=64,
                        decoder_start_token_id=tok.convert_tokens_to_ids("<|startoftranscript|>"),
                        eos_token_id=eos, pad_token_id=eos, bos_token_id=eos)
    torch.manual_seed(0)  # the same random weights every run, so what they decode is fixed
    model = WhisperForConditionalGeneration(cfg)
    g = model.generation_config
    g.max_length, g.is_multilingual, g._from_model_config = 16, False, False
    g.no_timestamps_token_id = tok.convert_tokens_to_ids("<|notimestamps|>")
    folder = tmp_path_factory.mktemp("tiny-whisper")
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(folder)
    return folder


def test_a_local_transformers_whisper_folder_loads_and_failures_stay_per_clip(tiny_whisper_folder):
    asr = Whisper(AsrConfig(model=str(tiny_whisper_folder), backend="transformers"))
    asr.setup()
    assert type(asr.model).__name__ == "AutomaticSpeechRecognitionPipeline"
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    failed, silent = asr.process_batch([{"clip_id": "c", "pcm": audio.tobytes(), "is_speech": True},
                                        {"clip_id": "d", "pcm": audio.tobytes(), "is_speech": False}]).rows
    # these random weights emit no timestamp tokens, so the timestamped decode fails: the clip gets the
    # reason and no ASR values, and the next clip is handled as usual
    errors = json.loads(failed.get("errors") or "{}")
    assert list(errors) == ["asr"] and errors["asr"].startswith("IndexError"), errors
    assert all(failed[name] is None for name in Whisper.fields)
    assert not silent.get("errors") and "asr" in json.loads(silent["skipped"])
    # the loaded model itself decodes: greedy decoding of fixed weights gives the same text twice
    texts = [asr.model({"raw": audio, "sampling_rate": 16000})["text"] for _ in range(2)]
    assert isinstance(texts[0], str) and texts[0] == texts[1]


def test_an_unknown_backend_or_missing_folder_fails_setup_with_the_config_key(tmp_path):
    with pytest.raises(ModelLoadError, match="annotate.asr.model"):
        Whisper(AsrConfig(model=str(tmp_path / "missing"), backend="transformers")).setup()
    with pytest.raises(ModelLoadError, match="unknown ASR backend"):
        Whisper(AsrConfig(backend="nemo")).setup()
