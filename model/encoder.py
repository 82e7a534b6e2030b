"""The audio tower: transformers' Whisper encoder over windows, and 4-frame stacking.

Audio longer than one window is cut into windows and the outputs concatenated. `window` mode runs
every window at full length (as Whisper was trained: zero-padded); `trim` mode runs the last,
partial window only as far as its audio goes (cheaper, with truncated position embeddings).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from model.configuration import EurekaAudioConfig


class AudioEncoder(nn.Module):
    def __init__(self, config: EurekaAudioConfig):
        super().__init__()
        self.config = config
        self.encoder = WhisperEncoder(config.audio_config)

    @property
    def out_width(self) -> int:
        return self.config.audio_config.d_model * self.config.stack_frames

    def forward(self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """input_features (B, mels, n*W) -> stacked frames (B, tokens, stack*d_model) and the valid-token
        mask (B, tokens). `input_features_mask` (B, n*W) marks real mel frames (padding is 0)."""
        c = self.config
        b, mels, frames = input_features.shape
        w = c.window_frames
        if frames % w:
            raise ValueError(f"input_features hold {frames} mel frames; expected a whole number of {w}-frame windows")
        if input_features_mask is None:
            input_features_mask = torch.ones(b, frames, dtype=torch.long, device=input_features.device)
        valid_frames = input_features_mask.sum(-1)
        n = frames // w
        windows = input_features.reshape(b, mels, n, w).permute(0, 2, 1, 3)  # (B, n, mels, W)
        used = (torch.arange(n, device=valid_frames.device)[None] * w) < valid_frames[:, None]  # (B, n)
        out = windows.new_zeros(b, n, w // 2, c.audio_config.d_model)
        if c.encoder_mode == "window":
            if used.any():
                out[used] = self.encoder(windows[used]).last_hidden_state.to(out.dtype)
        else:
            for i in range(b):
                for j in range(int(used[i].sum())):
                    keep = min(w, int(valid_frames[i]) - j * w)
                    keep = -(-keep // c.frames_per_token) * c.frames_per_token
                    enc = self.encode_trimmed(windows[i, j, :, :keep][None])[0]
                    out[i, j, : enc.shape[0]] = enc.to(out.dtype)
        hidden = out.reshape(b, n * w // 2, -1)
        stack = c.stack_frames
        pad = (-hidden.shape[1]) % stack
        if pad:
            hidden = nn.functional.pad(hidden, (0, 0, 0, pad))
        stacked = hidden.reshape(b, hidden.shape[1] // stack, stack * hidden.shape[-1])
        tokens = -(-valid_frames // c.frames_per_token)
        valid = torch.arange(stacked.shape[1], device=tokens.device)[None] < tokens[:, None]
        return stacked, valid

    def encode_trimmed(self, features: torch.Tensor) -> torch.Tensor:
        """The Whisper encoder's forward on fewer frames than a window (position embeddings cut to fit)."""
        enc = self.encoder
        x = nn.functional.gelu(enc.conv1(features))
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        positions = torch.arange(x.shape[1], device=x.device)
        x = x + enc.embed_positions(positions)
        for layer in enc.layers:
            x = layer(x, None)
        return enc.layer_norm(x)
