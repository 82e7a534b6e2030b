"""A local stand-in that speaks the OpenAI chat-completions protocol over HTTP.

Used only where no real local server can play the part: an audio LLM (none runs offline here), or
faults a real server cannot be made to produce. It records every request it receives.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def completion(content: str, model: str = "double", finish_reason: str = "stop") -> dict:
    return {"id": "chatcmpl-double", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


class OpenAIDouble:
    """`reply(request_json) -> (status, body_dict, headers)` decides each answer."""

    def __init__(self, reply: Callable[[dict], tuple[int, dict, dict]], port: int = 0):
        self.reply = reply
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                double.requests.append(body)
                double.headers.append(dict(self.headers))
                status, payload, headers = double.reply(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "OpenAIDouble":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
