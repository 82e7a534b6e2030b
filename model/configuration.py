"""Eureka-Audio configuration: a Whisper encoder config, a Qwen3 text config and the MoE adapter's
settings. Window sizes and token rates are derived from the audio config, never hard-coded."""

from __future__ import annotations

from transformers import PretrainedConfig, Qwen3Config, WhisperConfig

HOP_LENGTH = 160  # Whisper's feature extractor: one mel frame per 10 ms at 16 kHz


class EurekaAudioConfig(PretrainedConfig):
    model_type = "eureka_audio"
    sub_configs = {"audio_config": WhisperConfig, "text_config": Qwen3Config}

    def __init__(self, audio_config=None, text_config=None, stack_frames: int = 4, num_experts: int = 8,
                 experts_per_token: int = 2, num_shared_experts: int = 1, expert_hidden_size: int = 2048,
                 router_aux_loss_coef: float = 1e-2, router_z_loss_coef: float = 1e-3,
                 encoder_mode: str = "window", audio_token_id: int | None = None,
                 audio_start_token_id: int | None = None, audio_end_token_id: int | None = None,
                 sampling_rate: int = 16000, **kwargs):
        if isinstance(audio_config, dict):
            audio_config = WhisperConfig(**audio_config)
        if isinstance(text_config, dict):
            text_config = Qwen3Config(**text_config)
        self.audio_config = audio_config if audio_config is not None else WhisperConfig()
        self.text_config = text_config if text_config is not None else Qwen3Config()
        if encoder_mode not in ("window", "trim"):
            raise ValueError(f"encoder_mode must be 'window' or 'trim', not {encoder_mode!r}")
        if experts_per_token > num_experts:
            raise ValueError(f"experts_per_token ({experts_per_token}) cannot exceed num_experts ({num_experts})")
        self.stack_frames, self.num_experts, self.experts_per_token = stack_frames, num_experts, experts_per_token
        self.num_shared_experts, self.expert_hidden_size = num_shared_experts, expert_hidden_size
        self.router_aux_loss_coef, self.router_z_loss_coef = router_aux_loss_coef, router_z_loss_coef
        self.encoder_mode = encoder_mode
        self.audio_token_id, self.audio_start_token_id = audio_token_id, audio_start_token_id
        self.audio_end_token_id, self.sampling_rate = audio_end_token_id, sampling_rate
        kwargs.setdefault("tie_word_embeddings", self.text_config.tie_word_embeddings)
        super().__init__(**kwargs)

    # Derived sizes ---------------------------------------------------------------------------------
    @property
    def window_frames(self) -> int:
        """Mel frames per encoder window (3000 for Whisper: 30 s); the two convolutions halve once."""
        return 2 * self.audio_config.max_source_positions

    @property
    def window_samples(self) -> int:
        return self.window_frames * HOP_LENGTH

    @property
    def frames_per_token(self) -> int:
        """Mel frames per audio token: 2 per encoder frame, `stack_frames` encoder frames per token."""
        return 2 * self.stack_frames

    @property
    def samples_per_token(self) -> int:
        return self.frames_per_token * HOP_LENGTH  # 1280 = 80 ms at 16 kHz

    def num_audio_tokens(self, num_samples: int) -> int:
        return -(-num_samples // self.samples_per_token)

    def get_text_config(self, *args, **kwargs):
        return self.text_config
