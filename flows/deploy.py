"""`dataflux deploy`: register the deployments declared in prefect.yaml, the process work pool they
run on, and one global concurrency limit per LLM endpoint their configs talk to."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def code_source(spec: dict, root: Path, git_url: str | None = None, commit: str | None = None):
    """Where workers get the code: a git clone at a commit when prefect.yaml's `pull` names a git_clone
    step (or `git_url` is given), else this checkout's folder (workers on this machine only).
    `{{ $VAR }}` values in the pull step come from the environment; the commit defaults to this
    checkout's HEAD, so a worker elsewhere runs exactly the code that was deployed."""
    import os
    import re
    import subprocess

    from prefect.runner.storage import GitRepository

    step = next((s["prefect.deployments.steps.git_clone"] for s in spec.get("pull") or []
                 if "prefect.deployments.steps.git_clone" in s), {})

    def env(value):
        m = re.fullmatch(r"\{\{\s*\$(\w+)\s*\}\}", str(value or "").strip())
        return os.environ.get(m.group(1)) if m else value

    url = git_url or env(step.get("repository"))
    if not url:
        return str(root)
    commit = commit or env(step.get("commit_sha")) or subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return GitRepository(url=url, commit_sha=commit)


def deploy(prefect_yaml: Path = ROOT / "prefect.yaml", only: list[str] | None = None,
           pool: str | None = None, git_url: str | None = None, commit: str | None = None) -> list[dict]:
    """`pool` replaces every deployment's work pool (e.g. one per environment); `git_url`/`commit` make
    workers clone the code (see `code_source`)."""
    from prefect import Flow
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.schedules import Cron, Interval

    spec = yaml.safe_load(prefect_yaml.read_text())
    if pool:
        for d in spec["deployments"]:
            d["work_pool"] = {**d["work_pool"], "name": pool}
    done = []
    pools = {d["work_pool"]["name"] for d in spec["deployments"]}
    for pool in pools:
        ensure_work_pool(pool)
    ensure_llm_limits(spec["deployments"], prefect_yaml.parent)
    source = code_source(spec, prefect_yaml.parent, git_url, commit)
    for d in spec["deployments"]:
        if only and d["name"] not in only:
            continue
        flow = Flow.from_source(source=source, entrypoint=d["entrypoint"])
        schedules = [Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True)) if "cron" in s
                     else Interval(s["interval"], active=s.get("active", True)) for s in d.get("schedules", [])]
        limit = d.get("concurrency_limit")
        if isinstance(limit, dict):
            limit = ConcurrencyLimitConfig(**limit)
        triggers = [DeploymentEventTrigger(**t) for t in d.get("triggers", [])]
        deployment_id = flow.deploy(name=d["name"], work_pool_name=d["work_pool"]["name"], build=False, push=False,
                                    parameters=d.get("parameters") or {}, description=d.get("description"),
                                    schedules=schedules or None, triggers=triggers or None,
                                    paused=d.get("paused"), concurrency_limit=limit, print_next_steps=False,
                                    ignore_warnings=True)
        done.append({"name": f"{flow.name}/{d['name']}", "id": str(deployment_id), "triggers": len(triggers),
                     "schedules": len(schedules),
                     "code": source if isinstance(source, str) else f"git {source._url} @ {source._commit_sha}"})
    return done


def ensure_work_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def ensure_llm_limits(deployments: list[dict], root: Path) -> list[str]:
    """One global concurrency limit per endpoint named in the deployments' configs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate

    from dataflux.config import load_config
    from flows.quotas import endpoints, limit_name

    wanted: dict[str, int] = {}
    for d in deployments:
        path = (d.get("parameters") or {}).get("config")
        if not path or not (root / path).exists() or d["entrypoint"].split(":")[0] != "flows/synthesize.py":
            continue
        for e in endpoints(load_config(root / path)):
            name = limit_name(e)
            wanted[name] = max(wanted.get(name, 0), int(e.get("shared_limit") or e.get("concurrency", 8)))
    with get_client(sync_client=True) as client:
        for name, limit in wanted.items():
            try:
                client.read_global_concurrency_limit_by_name(name)
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))
            except Exception:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
    return sorted(wanted)
