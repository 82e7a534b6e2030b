"""Two CPU processes (gloo, launched by torchrun) give the loss and gradients (before clipping) of one
process on the same global batch, with DDP and with FSDP2, text-only micro-batches among them, and a
checkpoint saved on 2 ranks resumes on 1 and continues the same loss curve; a stuck rank fails the run
after `dist_timeout_s`. Each case runs in child processes (torchrun, and `dataflux train --nproc 2`)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import yaml

from model.synthetic import write_all
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # torchrun children: ~6 min on the shared 2-core machine
CALL_S = 300  # one child command (one training run: ~1 min unloaded); past it, the ranks' stacks are dumped

STEPS = textwrap.dedent("""
    import faulthandler, json, os, signal, sys, warnings
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test dumps a hung rank's stacks
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[3])
    import torch
    torch.set_num_threads(1)
    from model.train import Trainer, load_train_config
    out = sys.argv[2]
    trainer = Trainer(load_train_config(sys.argv[1], output_dir=out))
    clip = torch.nn.utils.clip_grad_norm_

    def before_clipping(params, *args, **kwargs):
        # the first step's gradients as the ranks reduced them, before clipping (clipping to a norm would hide
        # a gradient off by a uniform factor); full tensors (FSDP holds shards: every rank gathers)
        if trainer.state["step"] < 2:
            grads = {n: (p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).detach().clone()
                     for n, p in trainer.model.named_parameters() if p.grad is not None}
            if trainer.rank == 0:
                torch.save(grads, os.path.join(out, f"grads-{trainer.state['step'] + 1}.pt"))
        return clip(params, *args, **kwargs)

    torch.nn.utils.clip_grad_norm_ = before_clipping
    fetch, text_only = trainer.next_micro_batches, []

    def noting_text_only():  # which of this rank's micro-batches hold no audio
        micro = fetch()
        text_only.append(["input_features" not in b for b in micro])
        return micro

    trainer.next_micro_batches = noting_text_only
    losses, norms = [], []
    for step in range(4):
        record = trainer.step()
        losses.append(record["loss"])
        norms.append(record["grad_norm"])  # the norm before clipping
        if step == 1:
            trainer.save(trainer.out / "checkpoint-2")
    if trainer.rank == 0:
        json.dump(losses, open(os.path.join(out, "losses.json"), "w"))
        json.dump(norms, open(os.path.join(out, "grad_norms.json"), "w"))
    json.dump(text_only, open(os.path.join(out, f"text_only-{trainer.rank}.json"), "w"))
    trainer.close()
""")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    data = write_all(root / "data", rows=16, shards=2)
    (root / "steps.py").write_text(STEPS)
    return root, data


def config(root, name, data, **values):
    # the sources interleave TT TA | TT MT | TT TT | TA TT (2 samples to a micro-batch, 2 micro-batches to a
    # step): on 2 ranks, rank 0's micro-batch is text only in steps 1 and 2 while rank 1's has audio (FSDP's
    # ranks must still run the same collectives), and step 3 has no audio at all (the encoder is not updated)
    cfg = {"model": "tiny", "freeze": "full", "output_dir": str(root / name), "batch_size": 2, "max_length": 512,
           "sources": [{"path": data["asr"], "kind": "asr", "ratio": 0.1},
                       {"path": data["paralinguistic"], "kind": "mcq", "ratio": 0.1},
                       {"path": data["text"], "kind": "text", "ratio": 0.8}],
           "lr": {"audio_tower": 3e-4, "adapter": 3e-3, "language_model": 3e-3}, "warmup_steps": 1,
           "max_steps": 4, "shuffle_buffer": 8, "streaming": True, **values}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    (root / name).mkdir(exist_ok=True)
    return path


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), whatever session or group it moved to."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def is_rank(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return b"\0LOCAL_RANK=" in b"\0" + f.read()
    except OSError:
        return False


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def run(cmd, env=None, timeout=CALL_S, check=True):
    """`cmd` in its own session; past `timeout`, every rank below it prints its threads' stacks (SIGUSR1,
    into the failure message), then the whole tree is killed, as it is if the test itself is interrupted."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1", **(env or {})})
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            tree = descendants(proc.pid)
            signal_all([p for p in tree if is_rank(p)], signal.SIGUSR1)
            time.sleep(5)
            tree = [proc.pid, *tree, *descendants(proc.pid)]
            signal_all(tree, signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
            pytest.fail(f"{' '.join(map(str, cmd))} still running after {timeout} s; the ranks' stacks:\n"
                        f"{out[-2000:]}{err[-12000:]}")
    finally:  # also when pytest-timeout or ^C interrupts the test
        if proc.poll() is None:
            signal_all(descendants(proc.pid), signal.SIGKILL)
            proc.kill()
        with contextlib.suppress(ProcessLookupError):  # whatever is left in its group (none after a clean exit)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-12000:]
    return done


def steps(root, name, nproc):
    cmd = [sys.executable, str(root / "steps.py"), str(root / f"{name}.yaml"), str(root / name), str(ROOT)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *cmd[1:]]
    run(cmd)
    return (json.loads((root / name / "losses.json").read_text()),
            [torch.load(root / name / f"grads-{step}.pt") for step in (1, 2)],
            json.loads((root / name / "grad_norms.json").read_text()))


@pytest.fixture(scope="module")
def single(setup):
    root, data = setup
    config(root, "single", data, grad_accum=2)  # micro-batches 0 and 1: the 2 ranks' global batch
    return steps(root, "single", 1)


@pytest.mark.timeout(3 * CALL_S + 60)  # the one-process run (the `single` fixture, run by the first) and 2 calls
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_match_one_process_and_resume_on_one(parallel, setup, single, capsys):
    root, data = setup
    config(root, parallel, data, parallel=parallel)
    losses, grads, norms = steps(root, parallel, 2)
    one_losses, one_grads, one_norms = single
    with capsys.disabled():
        diff = [max((g2.get(n, torch.zeros_like(g)) - g).abs().max().item() for n, g in g1.items())
                for g1, g2 in zip(one_grads, grads)]
        print(f"\n{parallel}: losses {[round(x, 4) for x in losses]}, gradient norms before clipping "
              f"{[round(x, 4) for x in norms]}, max gradient difference (steps 1, 2, before clipping) "
              f"{[f'{d:.2e}' for d in diff]}")
        print(f"one process: losses {[round(x, 4) for x in one_losses]}, gradient norms before clipping "
              f"{[round(x, 4) for x in one_norms]}")
    for step, (g1, g2) in enumerate(zip(one_grads, grads), 1):
        for name, g in g1.items():  # an expert no token picked has no gradient on one process, zeros on FSDP
            assert torch.allclose(g2.get(name, torch.zeros_like(g)), g, atol=1e-5, rtol=1e-4), (step, name)
        assert all(name in g1 or not g.any() for name, g in g2.items()), step
    text_only = [json.loads((root / parallel / f"text_only-{r}.json").read_text()) for r in (0, 1)]
    assert [r[:3] for r in text_only] == [[[True], [True], [True]], [[False], [False], [True]]]
    assert norms == pytest.approx(one_norms, rel=1e-4, abs=1e-6)  # each step's, so a scale error shows
    assert losses == pytest.approx(one_losses, abs=1e-5)
    # the 2-rank checkpoint after step 2 resumes on 1 process (accumulating 2 micro-batches) and continues
    resumed = root / f"{parallel}-resumed"
    config(root, f"{parallel}-resumed", data, grad_accum=2, max_steps=4)
    run([sys.executable, "-m", "dataflux.cli", "train", "--config", str(root / f"{parallel}-resumed.yaml"),
         "--resume", str(root / parallel / "checkpoint-2")])
    curve = [json.loads(line)["loss"] for line in open(resumed / "train_log.jsonl")]
    assert curve == pytest.approx(losses[2:], abs=1e-5)


@pytest.mark.timeout(CALL_S + 60)
def test_dataflux_train_nproc_launches_ranks(setup):
    root, data = setup
    config(root, "cli", data, parallel="ddp", max_steps=2)
    out = run([sys.executable, "-m", "dataflux.cli", "train", "--config", str(root / "cli.yaml"), "--nproc", "2"])
    summary = json.loads((root / "cli" / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2 and "trained 2 steps" in out.stdout
    assert (root / "cli" / "final" / "dcp").is_dir() and (root / "cli" / "final" / "model.safetensors").is_file()


HANG = textwrap.dedent("""
    import faulthandler, signal, sys, time, warnings
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[2])
    import torch
    torch.set_num_threads(1)
    from model import train
    if train.dist_env()[0] == 1:  # rank 1 stays alive but never reaches a collective again (a stuck rank)
        train.Trainer.step = lambda self: time.sleep(3600)
    train.train(train.load_train_config(sys.argv[1]))
""")


@pytest.mark.timeout(CALL_S + 60)
def test_a_stuck_rank_fails_the_run_after_dist_timeout_s(setup):
    """Rank 0 waits in a collective for a rank that never comes: after `dist_timeout_s` it raises (not gloo's
    30 minutes), exits non-zero without destroy_process_group (which would wait on the stuck peer), and
    torchrun takes rank 1 down."""
    root, data = setup
    config(root, "hang", data, parallel="ddp", max_steps=2, dist_timeout_s=10)
    (root / "hang.py").write_text(HANG)
    start = time.monotonic()
    done = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                str(root / "hang.py"), str(root / "hang.yaml"), str(ROOT)], check=False)
    seconds = time.monotonic() - start
    assert done.returncode != 0, done.stderr[-4000:]
    assert "timed out" in done.stderr.lower() or "timeout" in done.stderr.lower(), done.stderr[-4000:]
    print(f"\nstuck rank: the run failed after {seconds:.0f} s")
