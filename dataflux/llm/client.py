"""An asynchronous client for any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp, hosted APIs).

- bounded concurrency, requests- and tokens-per-minute limits, and a cool-down after a 429 shared by
  every request to the endpoint (`limits.py`);
- retries with exponential backoff and full jitter on 429, 5xx, timeouts and dropped connections,
  honouring `Retry-After`; an endpoint that refuses connections (a server restarting) is polled about
  once a second for up to `unreachable_wait_s` before its requests fail;
- structured output: the JSON schema goes in the form the endpoint takes (`json_schema` for OpenAI and
  vLLM, `json_object` + `schema` for llama.cpp), and the reply is validated with pydantic inside the
  retry loop; `finish_reason` `length` or `content_filter` is a failure;
- a persistent request cache (`cache.py`); token usage and cost are counted;
- on final failure an `LLMError` carries the raw request and the last raw response, keys scrubbed.

The transport is aiohttp speaking the chat-completions protocol directly (one pooled session per event
loop): the openai package cost ~2.9 ms of client CPU per request, aiohttp about a fifth of that, which
is what lets one process keep 256 requests in flight (benchmarks/llm_client.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from dataflux.llm import secrets
from dataflux.llm.cache import RequestCache, StoreCache, open_cache, request_key
from dataflux.llm.limits import EndpointLimiter
from dataflux.settings import Section

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class Endpoint(Section):
    """An endpoint as config declares it (`generate.endpoint`, an answerer's or the judge's `endpoint`)."""

    base_url: str
    model: str
    api_key_env: str | None = None  # environment variable holding the key; never the key itself
    # the structured-output form: "openai" (json_schema response format), "llama.cpp" (json_object + schema)
    flavor: Literal["openai", "llama.cpp"] = "openai"
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    timeout_s: float = 120.0
    max_retries: int = 5
    unreachable_wait_s: float = 300.0  # connection refused/reset: retried (about once a second) this long
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    price_in_per_1k: float = 0.0  # for the cost report
    price_out_per_1k: float = 0.0
    name: str | None = None  # names the endpoint's shared Prefect quota (flows/quotas.py); the host by default
    shared_limit: int | None = None  # that quota's slots across flow runs; `concurrency` by default
    # requests in flight to this endpoint from all workers of a Ray cluster together (unset: `concurrency`
    # per worker, so N workers may send N times it)
    cluster_concurrency: int | None = Field(None, ge=1)
    # replicas of the same model (the `vllm` backend's servers): requests are spread over base_url and these
    base_urls: tuple[str, ...] = ()


class LocalEndpoint(Endpoint):
    """The embedded llama.cpp server's settings: unset, a server is started for the stage; with a
    `base_url` (and `model`), an already running server is used."""

    base_url: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _model_with_url(self) -> "LocalEndpoint":
        if self.base_url and not self.model:
            raise ValueError("a local endpoint with a base_url needs its model name too")
        return self


@dataclass
class Usage:
    requests: int = 0  # sent over the wire, retries included
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    text: str
    parsed: Any = None
    usage: dict = field(default_factory=dict)
    cached: bool = False
    request: dict = field(default_factory=dict)  # the raw request body (for lineage)
    reasoning: str | None = None  # the server's separate reasoning trace (vLLM's `reasoning_content`)


class LLMError(Exception):
    def __init__(self, reason: str, request: dict, response: str | None):
        self.reason = secrets.scrub(reason)
        self.request = json.loads(secrets.scrub(json.dumps(request)))
        self.response = secrets.scrub(response) if response else response
        super().__init__(self.reason)


class LLMClient:
    def __init__(self, endpoint: Endpoint, cache: RequestCache | StoreCache | None = None):
        self.endpoint = endpoint
        self.cache = cache
        self.usage = Usage()
        # a request lasts at most timeout_s; a lease outlives it by a margin, then lapses (its holder died)
        self.limiter = EndpointLimiter(endpoint.concurrency, endpoint.rpm, endpoint.tpm,
                                       endpoint.name or endpoint.base_url, endpoint.cluster_concurrency,
                                       lease_s=endpoint.timeout_s + 30.0)
        self._key = secrets.api_key(endpoint.api_key_env)
        self._urls = [f"{url.rstrip('/')}/chat/completions" for url in (endpoint.base_url, *endpoint.base_urls)]
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "Authorization": f"Bearer {self._key or 'not-needed'}"}
        self._session = None
        self._turn = 0
        self._loop = None

    def _bind(self) -> str:
        """The HTTP session and the limiter's primitives belong to one event loop: renew them per loop.
        Each request goes to the next replica URL in turn; returns that URL."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),  # the limiter bounds concurrency
                timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout_s), skip_auto_headers=("User-Agent",))
            self.limiter.rebind()
        self._turn += 1
        return self._urls[self._turn % len(self._urls)]

    async def _post(self, url: str, data: bytes) -> tuple[dict, str]:
        """One request: (reply, raw text), or `_HTTPStatus` for a non-2xx answer."""
        async with self._session.post(url, data=data, headers=self._headers) as response:
            text = await response.text()
            if response.status >= 300:
                raise _HTTPStatus(response.status, text, response.headers.get("Retry-After"))
        return json.loads(text), text

    def response_format(self, schema: dict, name: str) -> dict:
        if self.endpoint.flavor == "llama.cpp":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}

    async def complete(self, messages: list[dict], template_version: str, schema: type[BaseModel] | None = None,
                       **params) -> Completion:
        """One chat completion, from the cache when it holds the same request."""
        ep = self.endpoint
        json_schema = schema.model_json_schema() if schema else None
        body = {"model": ep.model, "messages": messages, **params}
        if json_schema:
            body["response_format"] = self.response_format(json_schema, schema.__name__)
        key = request_key(ep.model, template_version, params, json_schema, messages)
        if self.cache is not None and (hit := await self._cache_get(key)) is not None:
            self.usage.cache_hits += 1
            parsed = parse_structured(schema, hit["text"]) if schema else None
            return Completion(hit["text"], parsed, hit.get("usage", {}), True, body, hit.get("reasoning"))
        url = self._bind()
        data = json.dumps(body).encode()
        estimate = sum(len(str(m.get("content", ""))) for m in messages) // 4 + params.get("max_tokens", 256)
        last_response, reason = None, "no attempt"
        attempt, tries, down_since = 0, 0, None
        while True:
            retry_after, unreachable = None, False
            tries += 1
            async with self.limiter.semaphore:
                await self.limiter.wait_turn(estimate)
                async with self.limiter.cluster_slot():  # after the rpm wait: a lease only spans the request
                    self.usage.requests += 1
                    try:
                        reply, last_response = await self._post(url, data)
                        completion = self._accept(reply, schema, body)
                        if self.cache is not None:
                            value = {"text": completion.text, "usage": completion.usage,
                                     "reasoning": completion.reasoning}
                            if self.cache.remote:  # an object store: a network round trip, off the event loop
                                await asyncio.to_thread(self.cache.put, key, value, template_version)
                            else:
                                self.cache.put(key, value, template_version)
                        return completion
                    except Exception as e:  # classify: retry, or fail for good
                        retryable, reason, retry_after, body_text = self._classify(e)
                        last_response = body_text if body_text is not None else last_response
                        unreachable = _unreachable(e)
                        if not retryable:
                            break
            if unreachable:  # nothing listens (a server restarting): wait it out, up to unreachable_wait_s
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since < ep.unreachable_wait_s:
                    self.usage.retries += 1
                    await asyncio.sleep(random.uniform(0.5, 1.5))
                    continue
                reason = f"unreachable for {ep.unreachable_wait_s:.0f} s"
                break
            down_since = None
            if attempt >= ep.max_retries:
                break
            attempt += 1
            self.usage.retries += 1
            delay = retry_after if retry_after is not None else min(
                ep.backoff_max_s, ep.backoff_base_s * 2 ** (attempt - 1)) * random.random()
            if retry_after is not None:
                self.limiter.cool_down(retry_after)
            await asyncio.sleep(delay)
        self.usage.failures += 1
        raise LLMError(f"{reason} (after {tries} attempts)", body, last_response)

    async def _cache_get(self, key: str) -> dict | None:
        return await asyncio.to_thread(self.cache.get, key) if self.cache.remote else self.cache.get(key)

    def _accept(self, reply: dict, schema, body) -> Completion:
        try:
            choice = reply["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _Invalid(f"not a chat completion: {str(reply)[:200]}") from None
        usage = reply.get("usage") or {}  # billed even when the reply is then refused (truncated, invalid)
        self.usage.prompt_tokens += usage.get("prompt_tokens", 0) or 0
        self.usage.completion_tokens += usage.get("completion_tokens", 0) or 0
        self.usage.cost += ((usage.get("prompt_tokens", 0) or 0) * self.endpoint.price_in_per_1k
                            + (usage.get("completion_tokens", 0) or 0) * self.endpoint.price_out_per_1k) / 1000
        if choice.get("finish_reason") in ("length", "content_filter"):
            raise _Invalid(f"finish_reason={choice['finish_reason']}")
        text = message.get("content") or ""
        parsed = parse_structured(schema, text) if schema else None  # ValidationError -> retry
        return Completion(text, parsed, usage, False, body, _reasoning(message))

    def _classify(self, e: Exception) -> tuple[bool, str, float | None, str | None]:
        """(retryable, reason, retry_after_seconds, response body)."""
        import aiohttp

        if isinstance(e, _Invalid):
            return True, str(e), None, None
        if isinstance(e, (ValidationError, json.JSONDecodeError)):
            return True, f"invalid structured output: {str(e)[:300]}", None, None
        if isinstance(e, _HTTPStatus):
            return e.status in RETRY_STATUS, f"HTTP {e.status}", _retry_after(e.retry_after), e.text
        if isinstance(e, TimeoutError):
            return True, "timeout", None, None
        if isinstance(e, aiohttp.ClientError):  # refused, reset, dropped, a truncated reply
            return True, f"connection error ({type(e).__name__})", None, None
        return False, f"{type(e).__name__}: {e}", None, None

    @classmethod
    def open(cls, endpoint: Endpoint, cache_path: str | None) -> "LLMClient":
        """A client with its own cache connection (none without a path): one per stage worker, opened in
        `setup`, so usage counts add up across batches. Under an object-store URL the cache is files."""
        return cls(endpoint, open_cache(cache_path) if cache_path else None)

    def close_cache(self) -> None:
        if self.cache is not None:
            self.cache.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session, self._loop = None, None


def _unreachable(e: Exception) -> bool:
    """A connection that could not be made or was dropped, as opposed to a slow or failing answer."""
    import aiohttp

    return isinstance(e, aiohttp.ClientError) and not isinstance(e, (TimeoutError, aiohttp.ClientResponseError))


def _reasoning(message: dict) -> str | None:
    """vLLM's reasoning parsers put the trace beside the content (`reasoning_content`, newer: `reasoning`)."""
    return message.get("reasoning_content") or message.get("reasoning")


def parse_structured(schema: type[BaseModel], text: str) -> BaseModel:
    """Validate a reply against its schema. Raw newlines and tabs inside JSON strings (small models
    write them) are accepted; anything else malformed raises and is retried."""
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError:
        return schema.model_validate_json(text)  # raises the ValidationError the retry loop expects
    return schema.model_validate(data)


class _Invalid(Exception):
    pass


class _HTTPStatus(Exception):
    def __init__(self, status: int, text: str, retry_after: str | None):
        self.status, self.text, self.retry_after = status, text, retry_after
        super().__init__(f"HTTP {status}")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def run_all(client: LLMClient, requests: list[dict]) -> list[Completion | LLMError]:
    """Run many `complete(**request)` calls concurrently from synchronous code; failures are returned."""

    async def go():
        async def one(request):
            try:
                return await client.complete(**request)
            except LLMError as e:
                return e

        try:
            return await asyncio.gather(*(one(r) for r in requests))
        finally:
            await client.close()

    return asyncio.run(go())
