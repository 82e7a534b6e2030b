"""Eureka-Audio with the tiny config on CPU: audio tokens, placeholders, labels, routing, freezing,
generation with the cache, save/load, and loading real Whisper and Qwen3 checkpoints."""

import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from model.adapter import MoEAdapter
from model.modeling import AudioPlaceholderError, EurekaAudioForConditionalGeneration
from model.processing import IGNORE
from model.tiny import tiny_model_and_processor


@pytest.fixture(scope="module")
def tiny():
    model, processor = tiny_model_and_processor(seed=0)
    return model.eval(), processor


def audio(n, seed=0):
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


@pytest.mark.parametrize("mode", ["window", "trim"])
@pytest.mark.parametrize("samples", [1, 1279, 1280, 1281, 31999, 32000, 45000, 70001])
def test_audio_token_count_is_ceil_samples_over_1280(tiny, mode, samples):
    model, processor = tiny
    model.config.encoder_mode = mode
    try:
        batch = processor("What do you hear?", audio=[audio(samples)])
        out = model(**batch)
    finally:
        model.config.encoder_mode = "window"
    expected = math.ceil(samples / 1280)
    assert int((batch["input_ids"] == processor.audio_pad_id).sum()) == expected == out.num_audio_tokens
    assert model.config.window_samples == 32000  # derived from the tiny config: audio above spans windows


def test_trim_and_window_agree_on_a_whole_window(tiny):
    model, processor = tiny
    batch = processor("x", audio=[audio(32000)])
    window = model(**batch).logits
    model.config.encoder_mode = "trim"
    try:
        trim = model(**batch).logits
    finally:
        model.config.encoder_mode = "window"
    assert torch.allclose(window, trim, atol=1e-5)


def test_a_placeholder_feature_mismatch_raises(tiny):
    model, processor = tiny
    batch = processor("x", audio=[audio(5000)])
    ids = batch["input_ids"].clone()
    ids[ids == processor.audio_pad_id] = processor.tokenizer.convert_tokens_to_ids("a")  # drop every pad...
    ids[0, -1] = processor.audio_pad_id  # ...but one
    with pytest.raises(AudioPlaceholderError, match="1 <\\|audio_pad\\|> tokens but the audio gives 4"):
        model(**{**batch, "input_ids": ids})
    with pytest.raises(AudioPlaceholderError, match="no input_features"):
        model(input_ids=batch["input_ids"])


def test_adapter_outputs_land_exactly_at_the_pad_positions(tiny):
    model, processor = tiny
    batch = processor(["first", "a longer second prompt"], audio=[audio(3000), audio(9000, 1)])
    seen = {}
    hook = model.language_model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.update(embeds=kwargs["inputs_embeds"].detach()), with_kwargs=True)
    try:
        model(**batch)
    finally:
        hook.remove()
    audio_embeds, _ = model.encode_audio(batch["input_features"], batch["input_features_mask"])
    pads = batch["input_ids"] == processor.audio_pad_id
    assert torch.allclose(seen["embeds"][pads], audio_embeds, atol=1e-6)
    text = model.get_input_embeddings()(batch["input_ids"])
    assert torch.equal(seen["embeds"][~pads], text[~pads])


def test_labels_cover_only_the_assistant_text(tiny):
    _, processor = tiny
    sample = processor.encode("Which gender?", audio(4000), answer="A woman.", system="Be brief.")
    ids, labels = sample["input_ids"], sample["labels"]
    answer_ids = processor.tokenizer("A woman.<|im_end|>", add_special_tokens=False).input_ids
    assert labels[-len(answer_ids):] == answer_ids
    assert all(label == IGNORE for label in labels[:-len(answer_ids)])
    assert ids.count(processor.audio_pad_id) == 4


@pytest.mark.parametrize("mode", ["trace", "short", "none"])
def test_with_reasoning_trains_on_the_trace_the_reasoning_or_the_answer(tiny, mode):
    from model.data import mcq_target

    _, processor = tiny
    row = {"answer": "B", "target": "The pitch is high.\nAnswer: B", "trace": "Around 240 Hz, so option B."}
    target, think = mcq_target(row, mode)
    sample = processor.encode("Which pitch?", audio(4000), answer=target, think=think)
    text = processor.tokenizer.decode(sample["input_ids"])
    learned = processor.tokenizer.decode([t for t, label in zip(sample["input_ids"], sample["labels"])
                                          if label != IGNORE])
    expected = {"trace": "Around 240 Hz, so option B.\n</think>\n\nThe pitch is high.\nAnswer: B",
                "short": "The pitch is high.\nAnswer: B", "none": "Answer: B"}[mode]
    assert learned == expected + "<|im_end|>"
    # the prompt opens the think block for a trace, and closes it empty otherwise (thinking off, as at inference)
    assert text.endswith("<|im_start|>assistant\n<think>\n" + learned) == (mode == "trace")
    assert ("<think>\n\n</think>\n\n" + learned in text) == (mode != "trace")
    assert mcq_target({"answer": "B", "target": "R\nAnswer: B", "trace": None}, "trace") == ("R\nAnswer: B", False)
    assert mcq_target(row, True) == mcq_target(row, "short") and mcq_target(row, False) == mcq_target(row, "none")


def test_truncation_never_cuts_an_audio_span(tiny):
    from model.processing import SampleTooLong

    _, processor = tiny
    full = processor.encode("q", audio(12800), answer="a long answer " * 5)
    cut = processor.encode("q", audio(12800), answer="a long answer " * 5, max_length=len(full["input_ids"]) - 10)
    assert len(cut["input_ids"]) == len(full["input_ids"]) - 10 and cut["input_ids"].count(processor.audio_pad_id) == 10
    with pytest.raises(SampleTooLong):
        processor.encode("q", audio(12800), answer="x", max_length=8)


def test_routing_gates_losses_and_router_gradient():
    torch.manual_seed(0)
    adapter = MoEAdapter(16, 8, num_experts=4, top_k=2, num_shared=1, hidden=12)
    x = torch.randn(10, 16)
    out = adapter(x)
    assert torch.allclose(out.gates.sum(-1), torch.ones(10))
    assert out.expert_indices.shape == (10, 2) and (out.expert_indices[:, 0] != out.expert_indices[:, 1]).all()
    assert out.expert_load.sum().item() == pytest.approx(1.0)  # every valid token's k slots are routed
    assert out.z_loss.item() >= 0 and out.aux_loss.item() >= 1.0 - 1e-6
    (out.hidden_states.sum() + out.aux_loss + out.z_loss).backward()
    assert adapter.router.weight.grad is not None and adapter.router.weight.grad.abs().sum() > 0


def test_perfectly_balanced_routing_gives_aux_one_and_padding_changes_nothing():
    adapter = MoEAdapter(4, 4, num_experts=4, top_k=2)
    n = 8
    top_i = torch.tensor([[i % 4, (i + 1) % 4] for i in range(n)])
    probs = torch.zeros(n, 4).scatter(1, top_i, 0.5)
    logits = probs.log().clamp(min=-30)
    valid = torch.ones(n, dtype=torch.bool)
    aux, z, load = adapter.losses(logits, probs, top_i, valid)
    assert aux.item() == pytest.approx(1.0) and torch.allclose(load, torch.full((4,), 0.25))
    # padding tokens (any routing, any logits) do not change aux, z or the load
    pad_i, pad_p = torch.zeros(3, 2, dtype=torch.long), torch.tensor([[0.9, 0.05, 0.03, 0.02]] * 3)
    aux2, z2, load2 = adapter.losses(torch.cat([logits, pad_p.log() * 5]), torch.cat([probs, pad_p]),
                                     torch.cat([top_i, pad_i]), torch.cat([valid, torch.zeros(3, dtype=torch.bool)]))
    assert aux2.item() == pytest.approx(aux.item()) and z2.item() == pytest.approx(z.item())
    assert torch.allclose(load2, load)
    skewed = adapter.losses(logits, torch.zeros(n, 4).index_fill(1, torch.tensor([0, 1]), 0.5),
                            torch.tensor([[0, 1]] * n), valid)[0]
    assert skewed.item() == pytest.approx(2.0)  # everything on two experts: twice the balanced value


def test_adapter_only_preset_freezes_everything_else():
    model, processor = tiny_model_and_processor(seed=1)
    model.set_trainable("adapter-only")
    batch = processor("q", audio=[audio(6000)], answer="an answer")
    model(**batch).loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("adapter."):
            assert p.requires_grad, name
            if not name.startswith("adapter.experts."):  # a routed expert may get no token in a tiny batch
                assert p.grad is not None, name
        else:
            assert not p.requires_grad and p.grad is None, name
    assert set(model.parameter_groups()) == {"audio_tower", "adapter", "language_model"}
    with pytest.raises(ValueError, match="unknown freeze preset"):
        model.set_trainable("lora")


def test_generate_with_the_cache_equals_greedy_decoding_without_it(tiny):
    model, processor = tiny
    batch = processor("Describe it.", audio=[audio(7000)])
    calls = []
    hook = model.audio_tower.register_forward_hook(lambda *a: calls.append(1))
    try:
        cached = model.generate(**{k: v for k, v in batch.items() if k != "labels"}, max_new_tokens=8,
                                do_sample=False, use_cache=True, eos_token_id=None)
    finally:
        hook.remove()
    assert len(calls) == 1  # the encoder runs once per generate()
    ids = batch["input_ids"]
    for _ in range(8):
        logits = model(input_ids=ids, input_features=batch["input_features"],
                       input_features_mask=batch["input_features_mask"], use_cache=False).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, ids)


def test_save_and_load_give_identical_logits(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoProcessor

    model, processor = tiny
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    batch = processor("q", audio=[audio(4000)])
    again = EurekaAudioForConditionalGeneration.from_pretrained(tmp_path / "ckpt").eval()
    auto = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt").eval()
    reloaded_processor = AutoProcessor.from_pretrained(tmp_path / "ckpt")
    assert reloaded_processor("q", audio=[audio(4000)])["input_ids"].tolist() == batch["input_ids"].tolist()
    with torch.no_grad():
        want = model(**batch).logits
        assert torch.equal(again(**batch).logits, want) and torch.equal(auto(**batch).logits, want)


def test_real_whisper_and_qwen3_checkpoints_load(tmp_path):
    from transformers import Qwen3ForCausalLM, WhisperForConditionalGeneration

    from model.weights import load_language_model, load_whisper_encoder

    model, _ = tiny_model_and_processor(seed=2)
    torch.manual_seed(5)
    whisper = WhisperForConditionalGeneration(model.config.audio_config)
    whisper.save_pretrained(tmp_path / "whisper")
    qwen = Qwen3ForCausalLM(model.config.text_config)
    qwen.save_pretrained(tmp_path / "qwen3")
    info = load_whisper_encoder(model, tmp_path / "whisper")
    assert info["ignored"] > 0  # the decoder's tensors
    for k, v in whisper.model.encoder.state_dict().items():
        assert torch.equal(model.audio_tower.encoder.state_dict()[k], v), k
    load_language_model(model, tmp_path / "qwen3")
    for k, v in qwen.state_dict().items():
        assert torch.equal(model.language_model.state_dict()[k], v), k
    assert model.language_model.lm_head.weight.data_ptr() == model.language_model.model.embed_tokens.weight.data_ptr()
    with pytest.raises(ValueError, match="not a Whisper|no Whisper encoder"):
        load_whisper_encoder(model, tmp_path / "qwen3")
    with pytest.raises(ValueError, match="holds a whisper model"):
        load_language_model(model, tmp_path / "whisper")


def test_model_info_on_the_full_size_config():
    r = subprocess.run([sys.executable, "-m", "dataflux.cli", "model", "info", "full"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    counts = {m[0]: int(m[1].replace(",", "")) for m in re.findall(r"^(\w+)\s+([\d,]+)", r.stdout, re.M)}
    assert 1.7e9 <= counts["language_model"] <= 2.1e9
    assert 2.3e9 <= counts["total"] <= 2.7e9
    assert counts["adapter_active_per_token"] < counts["adapter_total"]
