"""Greedy decoding with a static KV cache gives the tokens eager decoding gives (batched, left-padded).
The compiled variant is compared in benchmarks/decode.py (`identical_outputs`): compiling takes minutes on
a busy 2-core machine."""

import numpy as np
import torch

from model.decode import generate_kwargs, greedy
from model.tiny import tiny_model_and_processor


def test_static_cache_decodes_the_same_tokens_as_eager():
    torch.set_num_threads(1)  # two threads on the shared 2-core machine are ~25x slower (measured)
    model, processor = tiny_model_and_processor()
    model.eval()
    rng = np.random.default_rng(0)
    audios = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 12000, 4000)]
    batch = processor.pad([processor.encode(q, a, None, "sys") for q, a in zip(("What?", "Who is it?", "Where?"),
                                                                                   audios)], "left")
    batch.update(processor.features(audios))
    eager = greedy(model, batch, 12, exact_length=True)
    static = greedy(model, batch, 12, static=True, exact_length=True, compile=False)
    assert eager.shape == (3, batch["input_ids"].shape[1] + 12) and torch.equal(eager, static)
    assert generate_kwargs(True, 8)["cache_implementation"] == "static"
    assert generate_kwargs(True, 8)["compile_config"]._compile_all_devices
