"""A real S3-compatible server for tests (moto's server mode, in its own process on loopback), and a
fault proxy in front of it for what moto cannot do on demand: 503 SlowDown and connections dropped
in the middle of a request. Credentials reach every client (delta-rs, s3fs, child processes) through
the standard environment variables only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from dataflux.llm.server import free_port


def _wait_up(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto server did not start in 30 s")


def s3_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "dataflux-test", "AWS_SECRET_ACCESS_KEY": "dataflux-test-secret",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true"}


class S3Server:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    def bucket(self) -> str:
        """A fresh bucket; returns its s3:// URL."""
        import fsspec

        name = f"t-{uuid.uuid4().hex[:12]}"
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.call_s3("create_bucket", Bucket=name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server for the session; the AWS_* variables point this process and its children at it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in s3_env(endpoint)}
    try:
        _wait_up(f"{endpoint}/moto-api/", proc)
        os.environ.update(s3_env(endpoint))
        yield S3Server(endpoint)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=10)


class FaultProxy:
    """A TCP proxy to the S3 server that reads each request's head. `rule(method, path)` returns None to
    relay the request untouched, "slowdown" to answer 503 SlowDown (S3's throttling reply), "drop" to
    close the connection without forwarding, or "drop-after" to forward it (the store applies it) and
    close the connection without relaying the reply. moto closes every connection after one reply, so a
    connection carries one request."""

    def __init__(self, upstream: str, rule=None):
        self.upstream = upstream.removeprefix("http://").split(":")
        self.rule = rule or (lambda method, path: None)
        self.seen: list[tuple[str, str, str]] = []  # (method, path, what was done)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(client,), daemon=True).start()

    def _one(self, client: socket.socket):
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            method, path = head.split(b" ", 2)[:2]
            action = self.rule(method.decode(), path.decode())
            self.seen.append((method.decode(), path.decode(), action or "pass"))
            if action == "drop":
                return
            if action == "slowdown":
                text = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b'<Message>Please reduce your request rate.</Message></Error>')
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                               b"Connection: close\r\nContent-Length: " + str(len(text)).encode() + b"\r\n\r\n" + text)
                return
            with socket.create_connection((self.upstream[0], int(self.upstream[1]))) as up:
                up.sendall(head)
                client.settimeout(0.2)
                reply = b""
                up.settimeout(0.05)
                while True:  # relay the rest of the request body and the reply until moto closes
                    try:
                        data = client.recv(65536)
                        if data:
                            up.sendall(data)
                    except (TimeoutError, OSError):
                        pass
                    try:
                        data = up.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    reply += data
                    if action != "drop-after":
                        client.sendall(data)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()
