"""`dataflux llm serve`: started as a user would, it prints its "serving ..." line, answers a chat
request, and a Ctrl-C (SIGINT) stops it and its llama.cpp server cleanly."""

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from dataflux.llm.server import MODEL_ALIAS, free_port
from tests.conftest import ROOT

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.slow


def test_llm_serve_answers_and_stops_on_sigint():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dataflux.cli", "llm", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()  # printed once the server answers
        assert re.match(rf"serving {MODEL_ALIAS} at http://127\.0\.0\.1:{port}/v1 ", line), (line, proc.stderr)
        body = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8,
                "temperature": 0}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            reply = json.loads(r.read())
        assert reply["choices"][0]["message"]["role"] == "assistant" and reply["usage"]["completion_tokens"] > 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # the llama.cpp server went with it
