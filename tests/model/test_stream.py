"""Streaming training data: every family becomes the right chat sample, hard rows are up-weighted, a
text-only batch never reaches the audio encoder, the global order does not depend on ranks or workers,
resuming continues it exactly, and peak memory does not grow with the corpus."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from model.data import ASR_SYSTEM, MCQ_SYSTEM
from model.stream import (CAPTION_SYSTEM, Mixture, SourceSpec, SourceStream, StreamingDataset, list_shards,
                          loader, read_rows, to_sample)
from model.synthetic import rows_for, write_all, write_parquet_source
from model.train import TrainConfig, Trainer
from tests.conftest import ROOT


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("sources"), rows=16, shards=2)


@pytest.fixture(scope="module")
def processor():
    from model.tiny import tiny_model_and_processor

    return tiny_model_and_processor()[1]


def first(spec):
    url = list_shards(spec)[0]
    return to_sample(spec, read_rows(url)[0], url, 0)


def test_every_family_becomes_the_right_sample(data):
    asr = first(SourceSpec(data["asr"], "asr"))
    assert asr.system == ASR_SYSTEM and asr.prompt == "Transcribe the audio." and asr.target.endswith("tone")
    assert asr.audio.dtype == np.float32 and len(asr.audio) == 6400  # 0.4 s at 16 kHz
    cap = first(SourceSpec(data["caption"], "caption"))
    assert cap.system == CAPTION_SYSTEM and "pitched tone" in cap.target and cap.audio is not None
    mcq = first(SourceSpec(data["paralinguistic"], "mcq"))
    assert mcq.system == MCQ_SYSTEM and "A." in mcq.prompt and "Answer:" in mcq.target
    assert first(SourceSpec(data["paralinguistic"], "mcq", with_reasoning=False)).target.startswith("Answer: ")
    swift = first(SourceSpec(data["semantic"], "swift"))  # audio read from the path relative to the JSONL
    assert "<audio>" not in swift.prompt and swift.target in ("high", "low") and len(swift.audio) == 6400
    text = first(SourceSpec(data["text"], "text"))
    assert text.audio is None and text.task == "text" and text.target in ("low", "middle", "high", "very high")


def test_datasets_folders_jsonl_and_fsspec_urls(tmp_path):
    import datasets
    import fsspec

    rows = rows_for("asr", 5)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    spec = SourceSpec(str(tmp_path / "ds"), "asr")
    stream = SourceStream(spec, 0, 100)
    assert sorted(stream.sample(k).target for k in range(5)) == sorted(r["text"] for r in rows)
    chat = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello"}]}]
    with fsspec.open("memory://bucket/text/chat.jsonl", "w") as f:  # what s3:// goes through
        f.write("\n".join(json.dumps(r) for r in chat))
    sample = first(SourceSpec("memory://bucket/text", "text"))
    assert (sample.system, sample.prompt, sample.target, sample.audio) == ("Be brief.", "Hi", "Hello", None)


def test_a_dataflux_run_folder_streams_its_corpus(demo_published):
    run = demo_published[0]
    spec = SourceSpec(str(run.local_path), "mcq", eval_fraction=0.15)
    stream = SourceStream(spec, 0, 64)
    corpus = run.table("corpus").read(columns=["question_id", "clip_id"]).to_pylist()
    from model.data import held_out

    assert stream.length == sum(not held_out(r["clip_id"], 0.15) for r in corpus) > 0
    assert stream.sample(0).task == "mcq"


def test_hard_rows_are_upweighted(data):
    plain = SourceStream(SourceSpec(data["paralinguistic"], "mcq"), 0, 8)
    hard = SourceStream(SourceSpec(data["paralinguistic"], "mcq", hard_weight=3.0), 0, 8)
    n_hard = sum(r["hard"] for u in plain.shards for r in read_rows(u, ["hard"]))
    assert n_hard == 4 and hard.length == plain.length + 2 * n_hard
    ids = [hard.sample(k).id for k in range(hard.length)]  # one epoch
    assert ids.count("paralinguistic-0") == 3 and ids.count("paralinguistic-1") == 1


def test_a_text_only_batch_never_calls_the_audio_encoder(data, tmp_path):
    config = TrainConfig(sources=(SourceSpec(data["text"], "text"),), output_dir=str(tmp_path), batch_size=2,
                         max_steps=2, max_length=256)
    trainer = Trainer(config)
    calls = []
    trainer.model.audio_tower.register_forward_pre_hook(lambda *a: calls.append(1))
    record = trainer.step()
    assert calls == [] and record["label_tokens"] > 0 and np.isfinite(record["loss"])
    assert all(p.grad is None for p in trainer.model.audio_tower.parameters())
    mixed = config.model_copy(update=dict(sources=(SourceSpec(data["text"], "text"), SourceSpec(data["asr"], "asr"))))
    trainer = Trainer(mixed)
    trainer.model.audio_tower.register_forward_pre_hook(lambda *a: calls.append(1))
    trainer.step()
    assert calls  # audio in the batch: encoded


def test_every_row_once_per_epoch_reading_a_block_of_shards_at_a_time(tmp_path):
    write_parquet_source(tmp_path / "asr", "asr", rows=40, shards=10)
    stream = SourceStream(SourceSpec(str(tmp_path / "asr"), "asr"), seed=3, shuffle_buffer=8)
    epoch = [stream.ref(k) for k in range(40)]
    assert len(set(epoch)) == 40 and epoch != sorted(epoch)
    assert [stream.ref(k) for k in range(40, 80)] != epoch  # a new order each epoch
    stream.shards_read = 0
    for k in range(40):
        stream.sample(k)
        assert len(stream._rows) <= 3  # only the shards the current block of 8 spans are held
    assert stream.shards_read <= 10 + 5  # a shard is read once per block it spans


def global_order(data, world, workers, start=0, count=12, batch_size=3):
    specs = [SourceSpec(data["asr"], "asr", 0.6), SourceSpec(data["caption"], "caption", 0.2),
             SourceSpec(data["paralinguistic"], "mcq", 0.2, hard_weight=2.0)]
    by_m = {}
    for rank in range(world):
        ds = StreamingDataset(specs, None, batch_size, 512, seed=1, shuffle_buffer=8, rank=rank, world=world,
                              start_micro_batch=start)
        for worker in range(workers):
            streams = [SourceStream(s, 1, 8, i) for i, s in enumerate(specs)]
            mix = Mixture([s.ratio for s in specs])
            gen = ds.micro_batches(worker, workers)
            for _ in range(count // (world * workers)):
                m = next(gen)
                by_m[m] = [s.id for _, s in ds.samples(m, streams, mix)]
    return [by_m[m] for m in sorted(by_m)]


def test_the_order_is_the_same_on_any_number_of_ranks_and_workers_and_resumes_exactly(data):
    one = global_order(data, 1, 1)
    assert global_order(data, 2, 1) == one and global_order(data, 2, 2) == one
    assert global_order(data, 1, 1, start=5, count=7) == one[5:]  # from a mid-epoch position (16 rows a source)
    families = [i.split("-")[0] for batch in one for i in batch]
    assert families.count("asr") == 22 and families.count("cap") == 7 and families.count("paralinguistic") == 7


def test_the_loader_yields_the_global_order_and_resumes_mid_epoch(data, processor):
    specs = [SourceSpec(data["asr"], "asr"), SourceSpec(data["semantic"], "swift")]

    def run(start, workers, n):
        ds = StreamingDataset(specs, processor, 2, 512, shuffle_buffer=8, start_micro_batch=start)
        it = iter(loader(ds, workers))
        return [next(it) for _ in range(n)]

    full, resumed = run(0, 0, 10), run(6, 2, 4)  # 32 samples an epoch: micro-batch 6 is mid-epoch
    assert [b["micro_batch"] for b in resumed] == [6, 7, 8, 9]
    for a, b in zip(full[6:], resumed):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["input_features"], b["input_features"])


PEAK = textwrap.dedent("""
    import json, resource, sys, warnings
    import torch
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[3])
    from model.stream import SourceSpec
    from model.train import TrainConfig, Trainer
    config = TrainConfig(sources=(SourceSpec(sys.argv[1], "asr"),), output_dir=sys.argv[2], batch_size=4,
                         max_steps=3, max_length=512, shuffle_buffer=64, num_workers=1)
    trainer = Trainer(config)
    for _ in range(config.max_steps):
        trainer.step()
    trainer._stream = None  # shuts the worker down, so its peak is counted among the children
    import gc; gc.collect()
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"peak_kib": me, "worker_peak_kib": workers}))
""")


def peak(corpus, out):
    done = subprocess.run([sys.executable, "-c", PEAK, str(corpus), str(out), str(ROOT)], capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_corpus(tmp_path, capsys):
    """10x the rows (each a 0.4 s clip, 64 rows a shard): the training process and the decoding worker
    peak within 10% of the small corpus's."""
    write_parquet_source(tmp_path / "small", "asr", rows=320, shards=5)
    write_parquet_source(tmp_path / "large", "asr", rows=3200, shards=50)
    small, large = peak(tmp_path / "small", tmp_path / "o1"), peak(tmp_path / "large", tmp_path / "o2")
    with capsys.disabled():
        print(f"\npeak RSS, 320 vs 3200 rows: trainer {small['peak_kib'] // 1024} vs {large['peak_kib'] // 1024} MiB,"
              f" worker {small['worker_peak_kib'] // 1024} vs {large['worker_peak_kib'] // 1024} MiB")
    assert large["peak_kib"] <= 1.1 * small["peak_kib"]
    assert large["worker_peak_kib"] <= 1.1 * small["worker_peak_kib"]
