"""Eureka-Audio processor: Whisper log-mel features and the Qwen-Omni style chat prompt.

Each audio becomes `<|audio_start|>` + one `<|audio_pad|>` per 80 ms (ceil(samples / 1280)) +
`<|audio_end|>`. Labels cover only the assistant's text. Truncation never cuts an audio span: a
sample whose audio ends beyond `max_length` raises `SampleTooLong` (the trainer skips and counts it).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import ProcessorMixin

from model.configuration import HOP_LENGTH

AUDIO_START, AUDIO_PAD, AUDIO_END = "<|audio_start|>", "<|audio_pad|>", "<|audio_end|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [IM_START, IM_END, AUDIO_START, AUDIO_PAD, AUDIO_END, "<think>", "</think>"]
EMPTY_THINK = "<think>\n\n</think>\n\n"  # thinking is off: an empty think block
THINK_START = "<think>\n"  # thinking is on: the answer starts with the trace
IGNORE = -100


class SampleTooLong(ValueError):
    pass


class EurekaAudioProcessor(ProcessorMixin):
    def __init__(self, feature_extractor=None, tokenizer=None, samples_per_token: int = 1280,
                 window_samples: int = 480000, **kwargs):
        self.samples_per_token, self.window_samples = samples_per_token, window_samples
        super().__init__(feature_extractor, tokenizer, **kwargs)
        missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing})
        self.audio_pad_id = tokenizer.convert_tokens_to_ids(AUDIO_PAD)

    @classmethod
    def for_config(cls, config, tokenizer, feature_extractor=None):
        from transformers import WhisperFeatureExtractor

        fe = feature_extractor or WhisperFeatureExtractor(feature_size=config.audio_config.num_mel_bins,
                                                          sampling_rate=config.sampling_rate, hop_length=HOP_LENGTH,
                                                          chunk_length=config.window_samples // config.sampling_rate)
        return cls(fe, tokenizer, config.samples_per_token, config.window_samples)

    def token_ids(self) -> dict[str, int]:
        """The ids a model config needs (`audio_token_id`, ...), after special tokens were added."""
        ids = self.tokenizer.convert_tokens_to_ids
        return {"audio_token_id": ids(AUDIO_PAD), "audio_start_token_id": ids(AUDIO_START),
                "audio_end_token_id": ids(AUDIO_END)}

    # Audio --------------------------------------------------------------------------------------------
    def num_audio_tokens(self, num_samples: int) -> int:
        return -(-num_samples // self.samples_per_token)

    def features(self, audios: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """(B, mels, n*W) log-mel features over whole windows, and the mask of real frames (B, n*W)."""
        windows = max(1, max(-(-len(a) // self.window_samples) for a in audios))
        total = windows * self.window_samples
        feats, masks = [], []
        for audio in audios:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim != 1 or not len(audio):
                raise ValueError("each audio must be a non-empty mono waveform at the model's sampling rate")
            padded = np.zeros(total, dtype=np.float32)
            padded[: len(audio)] = audio
            f = self.feature_extractor(padded, sampling_rate=self.feature_extractor.sampling_rate,
                                       padding="max_length", max_length=total, return_tensors="np").input_features[0]
            feats.append(f[:, : total // HOP_LENGTH])
            mask = np.zeros(total // HOP_LENGTH, dtype=np.int64)
            mask[: -(-len(audio) // HOP_LENGTH)] = 1
            masks.append(mask)
        return {"input_features": torch.from_numpy(np.stack(feats)),
                "input_features_mask": torch.from_numpy(np.stack(masks))}

    # Text ---------------------------------------------------------------------------------------------
    def prompt(self, text: str, num_samples: int | None, system: str | None = None, think: bool = False) -> str:
        """The chat prompt up to the assistant's answer; thinking off (an empty think block, as at inference)
        unless `think`, where the answer to learn begins with the model's trace."""
        audio = f"{AUDIO_START}{AUDIO_PAD * self.num_audio_tokens(num_samples)}{AUDIO_END}" if num_samples else ""
        head = f"{IM_START}system\n{system}{IM_END}\n" if system else ""
        opening = THINK_START if think else EMPTY_THINK
        return f"{head}{IM_START}user\n{audio}{text}{IM_END}\n{IM_START}assistant\n{opening}"

    def encode(self, text: str, audio: np.ndarray | None = None, answer: str | None = None,
               system: str | None = None, max_length: int | None = None, think: bool = False) -> dict:
        """input_ids and labels (the answer and its end token only) for one sample."""
        prompt_ids = self.tokenizer(self.prompt(text, None if audio is None else len(audio), system, think),
                                    add_special_tokens=False).input_ids
        answer_ids = self.tokenizer(answer + IM_END, add_special_tokens=False).input_ids if answer is not None else []
        ids = prompt_ids + answer_ids
        labels = [IGNORE] * len(prompt_ids) + answer_ids
        if max_length is not None and len(ids) > max_length:
            end = self.tokenizer.convert_tokens_to_ids(AUDIO_END)
            audio_end = max((i for i, t in enumerate(ids) if t == end), default=-1)
            if audio_end >= max_length:
                raise SampleTooLong(f"{len(ids)} tokens, and the audio span alone ends at token {audio_end + 1} "
                                    f"(max_length {max_length})")
            ids, labels = ids[:max_length], labels[:max_length]
            if answer is not None and all(label == IGNORE for label in labels[1:]):
                raise SampleTooLong(f"{len(ids)} tokens: cutting at max_length {max_length} leaves no answer to learn")
        return {"input_ids": ids, "labels": labels}

    def __call__(self, text: str | list[str], audio=None, answer=None, system=None, max_length=None,
                 padding_side: str = "left") -> dict[str, torch.Tensor]:
        """A batch: one text (and optionally one audio and one answer) per sample."""
        texts = [text] if isinstance(text, str) else list(text)
        audios = audio if isinstance(audio, (list, tuple)) else [audio] * len(texts) if audio is not None else None
        answers = answer if isinstance(answer, (list, tuple)) else [answer] * len(texts)
        encoded = [self.encode(t, audios[i] if audios else None, answers[i], system, max_length)
                   for i, t in enumerate(texts)]
        batch = self.pad(encoded, padding_side)
        if audios:
            batch.update(self.features(list(audios)))
        return batch

    def pad(self, encoded: list[dict], padding_side: str = "right") -> dict[str, torch.Tensor]:
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else \
            self.tokenizer.convert_tokens_to_ids(IM_END)
        longest = max(len(e["input_ids"]) for e in encoded)
        ids, labels, mask = [], [], []
        for e in encoded:
            n = longest - len(e["input_ids"])
            fill = lambda seq, v, n=n: ([v] * n + seq) if padding_side == "left" else (seq + [v] * n)  # noqa: E731
            ids.append(fill(e["input_ids"], pad_id))
            labels.append(fill(e["labels"], IGNORE))
            mask.append(fill([1] * len(e["input_ids"]), 0))
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
