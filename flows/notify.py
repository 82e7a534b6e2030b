"""Object-store notifications in, `dataflux.source.updated` out: the open-source stand-in for a Prefect
Cloud webhook (`dataflux watch serve`).

A small HTTP receiver takes the JSON that S3 and MinIO POST for bucket events
(`{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name"}, "object": {"key"}}}]}`,
keys URL-encoded; an SNS HTTP subscription wraps the same JSON in an envelope's `Message`; an
EventBridge API destination sends `{"detail-type": "Object Created", "detail": {"bucket", "object"}}`),
keeps the created objects under the configured source prefix, and emits the same event the polling
watcher emits (`flows.watch.emit_source_updated`), so the `dataflux-synthesize` deployment's trigger
starts a run that ingests exactly the files the run folder has not accounted for. Every other event
(deletes, other buckets, other prefixes) is ignored. It answers before the event is sent (Prefect's
events client queues it), so an object store's short webhook timeout is never at stake.

A shared secret, when configured, must come as `Authorization: Bearer TOKEN` (MinIO's `auth_token`),
an `X-DataFlux-Token` header (EventBridge connection, API-key auth) or a `?token=` query parameter
(an SNS subscription URL): missing 401, wrong 403. The token is never logged (request lines are logged
without their query). Bound to anything but loopback, the receiver refuses to start without a token.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote_plus, urlsplit

from flows.server import LOOPBACK

TOKEN_HEADER = "X-DataFlux-Token"
MAX_BODY = 4 * 1024 * 1024
log = logging.getLogger("dataflux.notify")


def split_source(source: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, "prefix/"); `s3://bucket` -> (bucket, "")."""
    parts = urlsplit(source)
    if parts.scheme not in ("s3", "s3a") or not parts.netloc:
        raise ValueError(f"source {source!r}: expected s3://BUCKET[/PREFIX] (the bucket the notifications are about)")
    prefix = parts.path.strip("/")
    return parts.netloc, prefix + "/" if prefix else ""


def created_objects(body: dict) -> list[tuple[str, str]]:
    """(bucket, key) of every object-created record in a notification body, keys decoded; other
    records are skipped. Accepts S3/MinIO `Records`, an SNS envelope around them, and EventBridge."""
    if body.get("Type") == "Notification" and isinstance(body.get("Message"), str):  # SNS HTTP subscription
        try:
            body = json.loads(body["Message"])
        except ValueError:
            return []
    if body.get("detail-type") == "Object Created" and isinstance(body.get("detail"), dict):  # EventBridge
        detail = body["detail"]
        bucket, key = (detail.get("bucket") or {}).get("name"), (detail.get("object") or {}).get("key")
        return [(bucket, key)] if isinstance(bucket, str) and isinstance(key, str) else []
    found = []
    for record in body.get("Records") or []:
        if not isinstance(record, dict):
            continue
        name = str(record.get("eventName", "")).removeprefix("s3:")
        if not name.startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3") or {}
        bucket, key = (s3.get("bucket") or {}).get("name"), (s3.get("object") or {}).get("key")
        if isinstance(bucket, str) and isinstance(key, str):
            found.append((bucket, unquote_plus(key)))  # S3 and MinIO URL-encode keys (space as '+')
    return found


def uris_under(source: str, objects: list[tuple[str, str]]) -> list[str]:
    """The objects' URIs (`s3://bucket/key`, as `dataflux.sources.list_source` names them) under
    `source`'s prefix, in order, each once."""
    bucket, prefix = split_source(source)
    uris = [f"s3://{b}/{k}" for b, k in objects if b == bucket and k.startswith(prefix) and not k.endswith("/")]
    return list(dict.fromkeys(uris))


class NotificationReceiver:
    """`source`: s3://bucket/prefix; `run_dir`, `config`: what the synthesize run gets (local paths are
    sent absolute, as the watcher sends them). `emit`: called as emit(source, run_dir, config, uris)
    (default `flows.watch.emit_source_updated`)."""

    def __init__(self, source: str, run_dir: str, config: str, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, emit=None):
        split_source(source)
        if host not in LOOPBACK and not token:
            raise ValueError(f"refusing to bind the notification receiver to {host} without a token: anyone who "
                             "reaches it could start runs; set one (--token-env VAR names the variable)")
        if emit is None:
            from flows.watch import emit_source_updated as emit
        self.source, self.token, self.emit = source, token or None, emit
        self.run_dir = run_dir if "://" in run_dir else str(Path(run_dir).resolve())
        self.config = config if "://" in config else str(Path(config).resolve())
        self.host, self.port = host, port
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.emitted = 0

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/"

    def check_token(self, headers, query: str) -> int | None:
        """None when allowed; else 401 (no token) or 403 (wrong token)."""
        if not self.token:
            return None
        given = headers.get(TOKEN_HEADER)
        auth = headers.get("Authorization") or ""
        if given is None and auth:
            given = auth.split(None, 1)[1] if auth.lower().startswith("bearer ") else auth
        if given is None:
            given = (parse_qs(query).get("token") or [None])[0]
        if given is None:
            return 401
        return None if hmac.compare_digest(given.encode(), self.token.encode()) else 403

    def handle(self, body: dict) -> list[str]:
        uris = uris_under(self.source, created_objects(body))
        if uris:
            self.emit(self.source, self.run_dir, self.config, uris)
            self.emitted += 1
            log.info("%d new object(s) under %s: emitted dataflux.source.updated", len(uris), self.source)
        return uris

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "dataflux-notify"

            def log_message(self, format, *args):  # the request line without its query (it may hold the token)
                log.info("%s %s %s", self.address_string(), self.command, urlsplit(self.path).path)

            def log_request(self, code="-", size="-"):
                log.info("%s %s %s -> %s", self.address_string(), self.command, urlsplit(self.path).path, code)

            def _answer(self, code: int, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # health check
                self._answer(200, {"source": receiver.source})

            def do_HEAD(self):  # MinIO checks that the endpoint answers before it accepts the target
                self.send_response(200)
                self.end_headers()

            def do_POST(self):
                refused = receiver.check_token(self.headers, urlsplit(self.path).query)
                if refused:
                    return self._answer(refused, {"error": "token missing" if refused == 401 else "token wrong"})
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    return self._answer(413, {"error": "body too large"})
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._answer(400, {"error": "body is not JSON"})
                if not isinstance(body, dict):
                    return self._answer(400, {"error": "body is not a JSON object"})
                if body.get("Type") == "SubscriptionConfirmation":  # SNS: confirm by opening SubscribeURL
                    log.warning("SNS subscription to confirm (open this URL once): %s", body.get("SubscribeURL"))
                    return self._answer(200, {"confirm": True})
                try:
                    uris = receiver.handle(body)
                except Exception as e:  # the event could not be queued: say so; the store retries
                    log.error("could not emit the event: %s", e)
                    return self._answer(503, {"error": "event not sent"})
                self._answer(200, {"announced": len(uris)})

        return Handler

    def start(self) -> "NotificationReceiver":
        self.httpd = ThreadingHTTPServer((self.host, self.port), self._handler())
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="dataflux-notify", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        from flows.server import flush_prefect_clients

        flush_prefect_clients()

    def __enter__(self) -> "NotificationReceiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
