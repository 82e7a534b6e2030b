"""Eureka-Audio: the Whisper audio tower, the MoE adapter and a Qwen3 language model, in the shape
transformers uses for its audio LMs (a PreTrainedModel with GenerationMixin).

The embeddings of the `<|audio_pad|>` placeholders are replaced by the adapter's outputs, in order;
their count must equal the number of valid audio tokens. The audio is encoded only at prefill: the
generation loop drops `input_features` once the cache holds the prompt.

Loss = next-token cross-entropy (labels -100 ignored) + lambda_aux * L_aux + lambda_z * L_z.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import ModelOutput

from model.adapter import MoEAdapter
from model.configuration import EurekaAudioConfig
from model.encoder import AudioEncoder

FREEZE_PRESETS = ("adapter-only", "full")


@dataclass
class EurekaAudioOutput(ModelOutput):
    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    z_loss: torch.Tensor | None = None
    expert_load: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: object | None = None
    num_audio_tokens: int | None = None


class AudioPlaceholderError(ValueError):
    pass


class EurekaAudioPreTrainedModel(PreTrainedModel):
    config_class = EurekaAudioConfig
    config: EurekaAudioConfig
    base_model_prefix = "eureka"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["WhisperEncoderLayer", "Qwen3DecoderLayer"]

    def _init_weights(self, module):
        std = self.config.text_config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)) and module.weight is not None:
            nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


class EurekaAudioForConditionalGeneration(EurekaAudioPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"language_model.lm_head.weight": "language_model.model.embed_tokens.weight"}

    def __init__(self, config: EurekaAudioConfig):
        super().__init__(config)
        self.audio_tower = AudioEncoder(config)
        self.adapter = MoEAdapter(self.audio_tower.out_width, config.text_config.hidden_size, config.num_experts,
                                  config.experts_per_token, config.num_shared_experts, config.expert_hidden_size,
                                  config.text_config.rms_norm_eps)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        if not config.text_config.tie_word_embeddings:
            self._tied_weights_keys = {}
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    # Audio ------------------------------------------------------------------------------------------
    def encode_audio(self, input_features, input_features_mask=None):
        """Adapter outputs for every valid audio token, in order, and the adapter's router statistics."""
        stacked, valid = self.audio_tower(input_features.to(self.dtype), input_features_mask)
        flat, flat_valid = stacked.reshape(-1, stacked.shape[-1]), valid.reshape(-1)
        out = self.adapter(flat, flat_valid)
        return out.hidden_states[flat_valid], out

    def merge_audio(self, input_ids, inputs_embeds, audio_embeds):
        mask = input_ids == self.config.audio_token_id
        n_pads, n_audio = int(mask.sum()), audio_embeds.shape[0]
        if n_pads != n_audio:
            raise AudioPlaceholderError(
                f"the prompt holds {n_pads} <|audio_pad|> tokens but the audio gives {n_audio} audio tokens "
                f"(one per {self.config.samples_per_token} samples); build the prompt with the processor")
        return inputs_embeds.masked_scatter(mask[..., None].expand_as(inputs_embeds),
                                            audio_embeds.to(inputs_embeds.dtype))

    def forward(self, input_ids=None, input_features=None, input_features_mask=None, attention_mask=None,
                position_ids=None, cache=None, inputs_embeds=None, labels=None, use_cache=None,
                logits_to_keep=0, **kwargs) -> EurekaAudioOutput:
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        adapter_out = None
        if input_features is not None:
            audio_embeds, adapter_out = self.encode_audio(input_features, input_features_mask)
            inputs_embeds = self.merge_audio(input_ids, inputs_embeds, audio_embeds)
        elif input_ids is not None and cache is None and (input_ids == self.config.audio_token_id).any():
            raise AudioPlaceholderError("the prompt holds <|audio_pad|> tokens but no input_features were given")
        out = self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  position_ids=position_ids, cache=cache, use_cache=use_cache,
                                  logits_to_keep=logits_to_keep, **kwargs)
        loss = lm_loss = None
        if labels is not None:
            logits = out.logits.float()
            lm_loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                  labels[:, 1:].reshape(-1), ignore_index=-100)
            loss = lm_loss
            if adapter_out is not None:
                loss = (loss + self.config.router_aux_loss_coef * adapter_out.aux_loss
                        + self.config.router_z_loss_coef * adapter_out.z_loss)
        return EurekaAudioOutput(
            loss=loss, lm_loss=lm_loss, logits=out.logits, cache=out.cache,
            aux_loss=adapter_out.aux_loss if adapter_out is not None else None,
            z_loss=adapter_out.z_loss if adapter_out is not None else None,
            expert_load=adapter_out.expert_load if adapter_out is not None else None,
            num_audio_tokens=int(audio_embeds.shape[0]) if adapter_out is not None else None)

    # Training helpers -------------------------------------------------------------------------------
    def set_trainable(self, preset: str) -> None:
        """`adapter-only` (stage 1: encoder and LM frozen) or `full` (stage 2 and SFT)."""
        if preset not in FREEZE_PRESETS:
            raise ValueError(f"unknown freeze preset {preset!r}: choose {', '.join(FREEZE_PRESETS)}")
        for name, p in self.named_parameters():
            p.requires_grad = preset == "full" or name.startswith("adapter.")

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters per component, for a learning rate per component."""
        groups = {"audio_tower": [], "adapter": [], "language_model": []}
        for name, p in self.named_parameters():
            if p.requires_grad:
                groups[name.split(".")[0]].append(p)
        return groups


def register() -> None:
    """Make `AutoConfig` / `AutoModel*` / `AutoProcessor` resolve the `eureka_audio` model type."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor

    from model.processing import EurekaAudioProcessor

    try:
        AutoConfig.register("eureka_audio", EurekaAudioConfig)
    except ValueError:
        return  # registered already
    AutoModel.register(EurekaAudioConfig, EurekaAudioForConditionalGeneration)
    AutoModelForCausalLM.register(EurekaAudioConfig, EurekaAudioForConditionalGeneration)
    AutoProcessor.register(EurekaAudioConfig, EurekaAudioProcessor)


register()
