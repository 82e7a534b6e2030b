"""Keep API keys out of every log line, exception text, table and report.

Keys come from the environment (or a Prefect Secret block, resolved by the flows); each one read is
registered here, and `scrub` replaces every registered value. A logging filter applies it to records.
"""

from __future__ import annotations

import logging
import os

_SECRETS: set[str] = set()
MASK = "***"


def api_key(env_var: str | None) -> str | None:
    """The key in `env_var`, registered for scrubbing; None when unset."""
    if not env_var:
        return None
    value = os.environ.get(env_var)
    if value:
        register(value)
    return value


def register(secret: str) -> None:
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def scrub(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, MASK)
    return text


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    target = logger or logging.getLogger()
    if not any(isinstance(f, ScrubFilter) for f in target.filters):
        target.addFilter(ScrubFilter())
    for handler in target.handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
