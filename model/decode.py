"""Batched greedy decoding, eager or with a static KV cache and `torch.compile` (transformers 5:
`cache_implementation="static"` and a `CompileConfig`; transformers compiles the decoding step itself).

    ids = greedy(model, batch, max_new_tokens=64, static=True)

`batch` is the processor's output for a left-padded batch (input_ids, attention_mask and, with audio,
input_features / input_features_mask). The static cache is sized for the prompt plus `max_new_tokens`;
the first call with a new shape compiles (seconds to minutes), later calls with the same shapes reuse it.
"""

from __future__ import annotations

import torch


def generate_kwargs(static: bool, max_new_tokens: int, exact_length: bool = False, compile: bool = True) -> dict:
    """What `model.generate` takes for greedy decoding; `exact_length` ignores end tokens (benchmarks);
    `compile=False` keeps the static cache but runs the step eagerly."""
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False}
    if exact_length:
        kwargs["min_new_tokens"] = max_new_tokens
    if static and not compile:
        kwargs.update(cache_implementation="static", disable_compile=True)
    elif static:
        from transformers import CompileConfig

        compile_config = CompileConfig(fullgraph=False, dynamic=False)
        compile_config._compile_all_devices = True  # transformers compiles only on accelerators unless told
        kwargs.update(cache_implementation="static", compile_config=compile_config)
    return kwargs


@torch.no_grad()
def greedy(model, batch: dict, max_new_tokens: int, static: bool = False, exact_length: bool = False,
           compile: bool = True):
    """Prompt plus greedy continuation for every row of the batch."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    return model.generate(**batch, **generate_kwargs(static, max_new_tokens, exact_length, compile))
