"""The `hf` backend's server: a transformers model in-process behind the OpenAI chat-completions protocol.

For audio LMs that vLLM does not serve and for Eureka-Audio checkpoints. Each replica of an `hf` role
(a Ray actor, as for `vllm`) runs `python -m model.hf_server`, so the role's requests go through the
same request layer as every other backend (cache keys, re-runs, usage, limits, rejects).

Requests that arrive together are generated together: a thread drains the queue into batches of
requests with the same decoding settings and runs one batched `generate` per batch (left padding,
bf16 on GPU, fp32 on CPU). `response_format: json_schema` is enforced with xgrammar's grammar
matcher, the engine vLLM uses for guided decoding. A request the model cannot take (its prompt longer
than `--max-model-len`, undecodable audio) is an HTTP 400 for that request alone; a batch whose
`generate` raises is retried one request at a time, so only the request that fails gets the error.
"""

from __future__ import annotations

import argparse
import base64
import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from dataflux.audio import TARGET_SR, decode_mono

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class BadRequest(ValueError):
    """The request itself is wrong for this model: HTTP 400, not retried."""


@dataclass
class Request:
    body: dict
    prompt: str | None = None  # the chat template's text (transformers models)
    audios: list = field(default_factory=list)
    encoded: dict | None = None  # Eureka-Audio: the processor's encoding of the prompt
    future: Future = field(default_factory=Future)

    def key(self) -> tuple:
        """Requests decoded alike go into one `generate` call."""
        b = self.body
        return (float(b.get("temperature") or 0.0), float(b.get("top_p") or 1.0), int(self.max_tokens),
                json.dumps(b.get("logit_bias") or {}, sort_keys=True), b.get("seed"))

    @property
    def max_tokens(self) -> int:
        return int(self.body.get("max_completion_tokens") or self.body.get("max_tokens") or 256)

    @property
    def schema(self) -> dict | None:
        fmt = self.body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return fmt["json_schema"]["schema"]
        if fmt.get("type") == "json_object":
            return fmt.get("schema") or {"type": "object"}
        return None


def message_parts(messages: list[dict]) -> tuple[list[dict], list[np.ndarray]]:
    """OpenAI messages -> the processor's chat format (`{"type": "audio"}` parts) and the decoded audio,
    in order. Audio comes as samples (`input_audio`); a URL is refused, nothing is fetched."""
    chat, audios = [], []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str) or content is None:
            chat.append({"role": m["role"], "content": content or ""})
            continue
        parts = []
        for part in content:
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": part["text"]})
            elif kind == "input_audio":
                try:
                    audios.append(decode_mono(base64.b64decode(part["input_audio"]["data"])))
                except Exception as e:
                    raise BadRequest(f"input_audio could not be decoded: {e}") from e
                parts.append({"type": "audio"})
            else:
                raise BadRequest(f"content part {kind!r} is not supported (text and input_audio are)")
        chat.append({"role": m["role"], "content": parts})
    return chat, audios


class Engine:
    """One model and its processor or tokenizer; `generate(requests)` answers a batch."""

    def __init__(self, path: str, dtype: str = "auto", device: str | None = None, max_model_len: int | None = None):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = {"auto": torch.bfloat16 if self.device == "cuda" else torch.float32, "float32": torch.float32,
                      "float": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
                      "half": torch.float16}[dtype]
        kind = json.loads((Path(path) / "config.json").read_text()).get("model_type")
        self.eureka = kind == "eureka_audio"
        if self.eureka:
            from model.build import build

            self.model, self.processor = build(path)
            self.tokenizer = self.processor.tokenizer
        else:
            from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMultimodalLM, AutoProcessor

            config = AutoConfig.from_pretrained(path)
            audio = hasattr(config, "audio_config")
            self.processor = AutoProcessor.from_pretrained(path) if audio else None
            loader = AutoModelForMultimodalLM if audio else AutoModelForCausalLM
            # a replica holding several GPUs (tensor_parallel_size > 1) spreads the layers over them
            spread = self.device == "cuda" and torch.cuda.device_count() > 1
            self.model = loader.from_pretrained(path, dtype=self.dtype, device_map="auto" if spread else None)
            self.tokenizer = self.processor.tokenizer if audio else self._tokenizer(path)
        if not getattr(self.model, "hf_device_map", None):
            self.model.to(self.device, dtype=self.dtype)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        self.max_model_len = max_model_len or getattr(self.model.config.get_text_config(), "max_position_embeddings",
                                                      None)
        self.eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos = set(self.eos if isinstance(self.eos, list) else [self.eos])
        self._grammar = None

    @staticmethod
    def _tokenizer(path):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)

    # -- one request -> model inputs --------------------------------------------------------------
    def prepare(self, request: Request) -> int:
        """Render the request's prompt; the prompt's token count (checked against the context)."""
        chat, audios = message_parts(request.body.get("messages") or [])
        if not chat:
            raise BadRequest("messages is empty")
        request.audios = audios
        if self.eureka:
            system = next((m["content"] for m in chat if m["role"] == "system"), None)
            user = [m for m in chat if m["role"] == "user"][-1]["content"]
            text = user if isinstance(user, str) else "\n".join(p["text"] for p in user if p["type"] == "text")
            if len(audios) != 1:
                raise BadRequest(f"an Eureka-Audio request takes exactly one audio part, got {len(audios)}")
            request.encoded = self.processor.encode(text, audios[0], None, system)
            n = len(request.encoded["input_ids"])
        else:
            render = self.processor or self.tokenizer
            request.prompt = render.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            n = self._inputs([request])["input_ids"].shape[1]
        if self.max_model_len and n + 1 > self.max_model_len:
            raise BadRequest(f"This model's maximum context length is {self.max_model_len} tokens; the prompt has "
                             f"{n} tokens (audio included)")
        return n

    def _inputs(self, requests: list[Request]) -> dict:
        if self.eureka:
            batch = self.processor.pad([r.encoded for r in requests], "left")
            batch.update(self.processor.features([r.audios[0] for r in requests]))
            batch.pop("labels", None)
            return batch
        prompts = [r.prompt for r in requests]
        audios = [a for r in requests for a in r.audios]
        if self.processor is not None and audios:
            rate = getattr(self.processor.feature_extractor, "sampling_rate", TARGET_SR)
            return dict(self.processor(text=prompts, audio=audios, sampling_rate=rate, return_tensors="pt",
                                       padding=True))
        return dict(self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False))

    # -- a batch ---------------------------------------------------------------------------------
    def generate(self, requests: list[Request]) -> list[dict]:
        import torch

        first = requests[0].body
        inputs = {k: (v.to(self.device, dtype=self.dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in self._inputs(requests).items() if isinstance(v, torch.Tensor)}
        temperature = float(first.get("temperature") or 0.0)
        kwargs = dict(max_new_tokens=requests[0].max_tokens, do_sample=temperature > 0,
                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=sorted(self.eos))
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=float(first.get("top_p") or 1.0))
            if first.get("seed") is not None:
                torch.manual_seed(int(first["seed"]))
        processors = []
        if first.get("logit_bias"):
            processors.append(LogitBias({int(k): float(v) for k, v in first["logit_bias"].items()}))
        if any(r.schema is not None for r in requests):
            processors.append(self._json_processor(requests))
        if processors:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(processors)
        with torch.no_grad():
            out = self.model.generate(**inputs, **kwargs)
        start = inputs["input_ids"].shape[1]
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [self._reply(r, out[i, start:].tolist(), int(prompt_lengths[i])) for i, r in enumerate(requests)]

    def _json_processor(self, requests: list[Request]):
        """xgrammar's matcher per sequence: each request's own schema (any JSON for one without)."""
        import xgrammar as xgr
        from xgrammar.contrib.hf import LogitsProcessor

        if self._grammar is None:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab)
            self._grammar = xgr.GrammarCompiler(info)
        grammars = [self._grammar.compile_json_schema(json.dumps(r.schema), any_whitespace=False)
                    if r.schema is not None else self._grammar.compile_builtin_json_grammar() for r in requests]
        return LogitsProcessor(grammars)

    def _reply(self, request: Request, ids: list[int], prompt_tokens: int) -> dict:
        cut = next((i for i, t in enumerate(ids) if t in self.eos), None)
        finish = "stop" if cut is not None else "length"
        ids = ids[:cut] if cut is not None else ids[:request.max_tokens]
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        for token in (self.tokenizer.pad_token, self.tokenizer.eos_token):
            if token:
                text = text.replace(token, "")
        reasoning = None
        if THINK_CLOSE in text:  # a thinking model's trace goes beside the answer, as vLLM's parsers put it
            head, _, text = text.partition(THINK_CLOSE)
            reasoning, text = head.replace(THINK_OPEN, "").strip(), text.strip()
        message = {"role": "assistant", "content": text}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": request.body.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(ids),
                          "total_tokens": prompt_tokens + len(ids)}}


class LogitBias:
    """OpenAI's `logit_bias`: added to the chosen tokens' logits at every step."""

    def __init__(self, bias: dict[int, float]):
        self.ids, self.values = list(bias), list(bias.values())

    def __call__(self, input_ids, scores):
        import torch

        scores[:, self.ids] += torch.tensor(self.values, dtype=scores.dtype, device=scores.device)
        return scores


class Batcher:
    """Collects requests and runs them in batches of up to `max_batch` with the same decoding settings."""

    def __init__(self, engine: Engine, max_batch: int = 8, wait_s: float = 0.01):
        self.engine, self.max_batch, self.wait_s = engine, max_batch, wait_s
        self.queue: queue.Queue[Request] = queue.Queue()
        self.completed = self.failed = 0
        threading.Thread(target=self._loop, daemon=True, name="hf-batcher").start()

    def submit(self, body: dict) -> Future:
        request = Request(body)
        try:
            self.engine.prepare(request)
        except BadRequest as e:
            request.future.set_exception(e)
            return request.future
        self.queue.put(request)
        return request.future

    def _loop(self) -> None:
        while True:
            pending = [self.queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(pending) < 4 * self.max_batch:
                try:
                    pending.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            groups: dict[tuple, list[Request]] = {}
            for r in pending:
                groups.setdefault(r.key(), []).append(r)
            for group in groups.values():
                for i in range(0, len(group), self.max_batch):
                    self._run(group[i:i + self.max_batch])

    def _run(self, batch: list[Request]) -> None:
        try:
            replies = self.engine.generate(batch)
        except Exception as e:
            if len(batch) > 1:  # find the one that fails; its batch-mates are answered
                for r in batch:
                    self._run([r])
                return
            self.failed += 1
            batch[0].future.set_exception(e)
            return
        for r, reply in zip(batch, replies):
            self.completed += 1
            r.future.set_result(reply)


def make_handler(batcher: Batcher, served_name: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # no access log: prompts are the user's data
            pass

        def _send(self, status: int, payload: dict | str, content_type: str = "application/json") -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            kind = "BadRequestError" if status == 400 else "InternalServerError"
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self):
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": served_name, "object": "model",
                                                             "owned_by": "dataflux"}]})
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            elif self.path == "/metrics":
                self._send(200, f"dataflux_hf_requests_completed_total {batcher.completed}\n"
                                f"dataflux_hf_requests_failed_total {batcher.failed}\n", "text/plain")
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self):
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"no route {self.path}")
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if int(body.get("n") or 1) != 1:
                    raise BadRequest("n > 1 is not supported")
                reply = batcher.submit(body).result()
            except (BadRequest, json.JSONDecodeError) as e:
                self._error(400, str(e))
            except Exception as e:
                self._error(500, f"{type(e).__name__}: {e}")
            else:
                reply["model"] = served_name
                self._send(200, reply)

    return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m model.hf_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a local checkpoint folder (nothing is downloaded)")
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float", "bfloat16", "float16", "half"])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--max-batch", type=int, default=8)
    args = p.parse_args(argv)
    engine = Engine(args.model, args.dtype, args.device, args.max_model_len)
    server = ThreadingHTTPServer((args.host, args.port),
                                 make_handler(Batcher(engine, args.max_batch), args.served_model_name or args.model))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
