"""Tiny offline checkpoints and one vLLM engine per model for the whole test session (an engine start
costs ~80-100 s on two CPU cores). The engines are the `vllm` backend's own Ray actor replicas: a
pipeline step that declares the same model finds them by name instead of starting another."""

import pytest

from dataflux.llm.replicas import ROOT, ServedEndpoint, vllm_python

# Small engines: a CPU KV cache of 10% of memory, few sequences, and a context that a long clip exceeds
LOOPBACK = "127.0.0.1"
AUDIO_MAX_LEN = 512  # Qwen2-Audio: 25 audio tokens per second, so a clip over ~19 s cannot fit


def _need_vllm():
    from pathlib import Path

    if not Path(vllm_python(None)).exists():
        pytest.skip("no vLLM venv: run `make vllm-env`")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from dataflux.llm.tiny import build_audio_lm, build_text_lm

    root = tmp_path_factory.mktemp("tiny_models")
    return {"text": build_text_lm(root / "text"), "audio": build_audio_lm(root / "audio")}


def audio_spec(path) -> ServedEndpoint:
    # loopback: the only address reachable on the test machines (Ray may report the VM's interface)
    return ServedEndpoint(model=str(path), served_name="tiny-qwen2-audio", device="cpu", num_cpus=0.05, host=LOOPBACK,
                          dtype="float32", max_model_len=AUDIO_MAX_LEN, gpu_memory_utilization=0.08,
                          max_num_seqs=8, max_retries=1, backoff_base_s=0.05, start_timeout_s=600)


@pytest.fixture(scope="session")
def vllm_audio(ray_session, tiny_models):
    """(spec, endpoint) of the audio LM's replica, started once for the session."""
    _need_vllm()
    from dataflux.llm.replicas import start_replicas

    spec = audio_spec(tiny_models["audio"])
    return spec, start_replicas(None, spec, "vllm")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct (the bundled GGUF, dequantized once into the DataFlux cache): real words for
    the served writer and judge."""
    from dataflux.llm.tiny import smollm2_hf

    return smollm2_hf()


def smol_spec(path, backend: str = "vllm") -> ServedEndpoint:
    # vLLM's guided decoding without free whitespace: a small model otherwise pads JSON with newlines
    extra = (("--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}')
             if backend == "vllm" else ())
    return ServedEndpoint(model=str(path), served_name="smollm2-135m", device="cpu", num_cpus=0.05, host=LOOPBACK,
                          dtype="float32", max_model_len=3072, gpu_memory_utilization=0.15, max_num_seqs=16,
                          max_retries=1, backoff_base_s=0.05, start_timeout_s=600, extra_args=extra)


@pytest.fixture(scope="session")
def vllm_text(ray_session, smollm2):
    """(spec, endpoint) of SmolLM2's vLLM replica, started once for the session."""
    _need_vllm()
    from dataflux.llm.replicas import start_replicas

    spec = smol_spec(smollm2)
    return spec, start_replicas(None, spec, "vllm")


__all__ = ["ROOT", "audio_spec", "smol_spec"]
