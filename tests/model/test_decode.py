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


def test_evaluation_with_a_static_cache_predicts_what_eager_generate_does(tmp_path, monkeypatch):
    """`EvalConfig(decode="static")`: evaluation's batched greedy decoding on a static KV cache writes the
    predictions eager `generate` writes (left-padded batches of clips of different lengths, every task)."""
    import json

    import soundfile as sf

    import model.decode
    from model.evaluate import EvalConfig, evaluate

    torch.set_num_threads(1)
    # the tiny model as initialised repeats one token whatever it hears: weights moved at random make its
    # predictions differ from row to row and token to token, so a decoding difference shows
    net, processor = tiny_model_and_processor()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    net.save_pretrained(tmp_path / "checkpoint")
    processor.save_pretrained(tmp_path / "checkpoint")
    rng = np.random.default_rng(1)
    for i, n in enumerate((8000, 16000, 4000, 12000)):
        sf.write(tmp_path / f"{i}.wav", (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
    rows = [{"id": "m0", "audio": "0.wav", "question": "What is heard?", "options": ["A tone", "Speech"],
             "answer": "A"},
            {"id": "m1", "audio": "1.wav", "question": "Who speaks, and where?", "options": ["Nobody", "A man", "A"],
             "answer": "B"},
            {"id": "a0", "task": "asr", "audio": "2.wav", "reference": "nothing"},
            {"id": "a1", "task": "asr", "audio": "3.wav", "reference": "nothing at all"},
            {"id": "l0", "task": "label", "audio": "0.wav", "question": "Emotion?", "label": "neutral"}]
    (tmp_path / "bench.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    used = []
    original = model.decode.generate_kwargs
    monkeypatch.setattr(model.decode, "generate_kwargs", lambda static, *a, **k: used.append(static) or
                        original(static, *a, **k))

    def predictions(decode):
        out = tmp_path / decode
        evaluate(str(tmp_path / "checkpoint"), str(tmp_path / "bench.jsonl"), out,
                 EvalConfig(batch_size=2, max_new_tokens={"mcq": 10, "asr": 10, "label": 6}, decode=decode))
        return {r["id"]: r["prediction"] for r in map(json.loads, (out / "predictions.jsonl").open())}

    eager = predictions("eager")
    assert used and not any(used)
    used.clear()
    static = predictions("static")
    assert used and all(used)  # every batch went through the static cache
    assert len(eager) == 5 and len(set(eager.values())) == 5 and static == eager
