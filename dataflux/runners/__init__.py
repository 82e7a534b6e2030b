"""Runners execute a stage over items: in-process (`local`) or on Ray Data actor pools (`ray`)."""

from dataflux.runners.base import Runner, StageStats
from dataflux.runners.local import LocalRunner


def make_runner(name: str, ray_address: str | None = None, auth_token_env: str | None = None, **options) -> Runner:
    if name == "local":
        return LocalRunner()
    if name == "ray":
        from dataflux.runners.ray import RayRunner

        return RayRunner(address=ray_address, auth_token_env=auth_token_env, **options)
    raise ValueError(f"unknown runner {name!r}: choose 'local' or 'ray'")


__all__ = ["LocalRunner", "Runner", "StageStats", "make_runner"]
