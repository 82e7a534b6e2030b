"""API keys from Prefect Secret blocks: a flow takes `secrets={"ENV_VAR": "secret-block-name"}` (names,
never values), loads each block in the flow run's own process, puts the value in that environment
variable (where the config's `api_key_env` reads it) and registers it for scrubbing, so it never
appears in parameters, logs, artifacts or tables."""

from __future__ import annotations

import logging
import os
import re

RUN_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs")


def resolve_secrets(secrets: dict[str, str] | None) -> list[str]:
    """Set each variable from its Secret block; returns the variables set."""
    from prefect.blocks.system import Secret

    from dataflux.llm.secrets import install_log_filter, register

    for logger in RUN_LOGGERS:  # before any value is read: nothing logged afterwards can carry it
        install_log_filter(logging.getLogger(logger))
    for var, block in (secrets or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
            raise ValueError(f"secrets: {var!r} is not an environment variable name")
        value = Secret.load(block).get()
        if not isinstance(value, str) or not value:
            raise ValueError(f"secrets: Secret block {block!r} does not hold a non-empty string")
        register(value)
        os.environ[var] = value
    return sorted(secrets or {})
