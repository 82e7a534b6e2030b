"""The `eureka` answerer of the verify stage: a trained Eureka-Audio checkpoint answers each question
from the audio. Where it disagrees with the kept answer, the item is marked as a hard example.

It lives with the answerers, not in `model/`, so that `model/` depends on no verifier."""

from __future__ import annotations

from dataflux.audio import decode_mono
from dataflux.mcq import extract_letter, mcq_prompt
from dataflux.stage import Resources, Result
from model.data import MCQ_SYSTEM
from verifiers.answerers import Answerer, answer, with_answer


class EurekaAnswerer(Answerer):
    def __init__(self, name: str, checkpoint: str, max_new_tokens: int = 256, resources: Resources | None = None):
        super().__init__(name, resources or Resources(num_cpus=1.0, batch_size=8))
        self.checkpoint, self.max_new_tokens = checkpoint, max_new_tokens

    def setup(self) -> None:
        import torch

        from model.build import build

        self.model, self.processor = build(self.checkpoint)
        if torch.cuda.is_available():
            self.model.to("cuda", dtype=torch.bfloat16)
        self.model.eval()

    def process_batch(self, items: list[dict]) -> Result:
        import torch

        audios = [decode_mono(item["audio"]) for item in items]
        encoded = [self.processor.encode(mcq_prompt(i["question"], i["options"]), a, None, MCQ_SYSTEM)
                   for i, a in zip(items, audios)]
        batch = self.processor.pad(encoded, "left")
        batch.update(self.processor.features(audios))
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        with torch.no_grad():
            ids = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False)
        texts = self.processor.tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        rows = []
        for item, text in zip(items, texts):
            letter, how = extract_letter(text, item["options"])
            rows.append(with_answer(item, answer(self.name, "eureka", self.checkpoint, letter, text, text, how)))
        return Result(rows)
