"""Alerts: Prefect automations that notify through a notification block.

- `dataflux-flow-run-failed`: a flow run of one of our flows enters Failed or Crashed.
- `dataflux-quality-regressed`: the `dataflux.quality.regressed` event, which the synthesize flow emits
  when a newly published corpus version is worse than the previous one beyond the configured bounds
  (`dataflux.history.QualityBounds`: yield per stage, answerer kappa, answer-letter balance, coverage,
  blind-answerable rate).
- `eureka-evaluation-regressed`: the `eureka.evaluation.regressed` event, which the evaluate flow emits
  when a retrained checkpoint scores worse than the best so far beyond its bound (flows/evaluate.py).

The notification goes to a block: by default a custom-webhook block (`custom-webhook/dataflux-alerts`,
created from `dataflux deploy --alerts-webhook URL`) that POSTs `{"subject": ..., "body": ...}`; any
other Prefect notification block (Slack, email, Teams...) works by its slug and name
(`--alerts-block slack-webhook/ops`). The Prefect server sends the notifications (its automation
services), so the receiver must be reachable from the server.
"""

from __future__ import annotations

from datetime import timedelta

QUALITY_EVENT = "dataflux.quality.regressed"
DEFAULT_BLOCK = "custom-webhook/dataflux-alerts"
FLOW_NAMES = ("dataflux-synthesize", "dataflux-maintain", "eureka-train", "eureka-evaluate", "eureka-retrain")
FAILED = "dataflux-flow-run-failed"
REGRESSED = "dataflux-quality-regressed"
EVAL_EVENT = "eureka.evaluation.regressed"
EVAL_REGRESSED = "eureka-evaluation-regressed"

FAILED_SUBJECT = "DataFlux: flow run {{ flow_run.name }} of {{ flow.name }} is {{ flow_run.state.name }}"
FAILED_BODY = """Flow run {{ flow_run.name }} of {{ flow.name }} entered {{ flow_run.state.name }}.
Message: {{ flow_run.state.message }}
Started: {{ flow_run.start_time }}; ended: {{ flow_run.end_time }}
flow run: {{ flow_run|ui_url }}"""
REGRESSED_SUBJECT = ("DataFlux: corpus quality regressed in {{ event.payload.run_dir }} "
                     "(version {{ event.payload.version }})")
REGRESSED_BODY = "{{ event.payload.message }}"
EVAL_SUBJECT = ("Eureka: evaluation score regressed for {{ event.payload.checkpoint }} "
                "({{ event.payload.metric }} {{ event.payload.best }} -> {{ event.payload.new }})")


def save_webhook_block(url: str, name: str = "dataflux-alerts") -> str:
    """A custom-webhook notification block POSTing JSON {subject, body} to `url`; returns its slug/name."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(name="DataFlux alerts", url=url, method="POST",
                                   json_data={"subject": "{{subject}}", "body": "{{body}}"}
                                   ).save(name, overwrite=True)
    return f"custom-webhook/{name}"


def ensure_alerts(block: str = DEFAULT_BLOCK, flows: tuple[str, ...] = FLOW_NAMES,
                  max_duration: timedelta | None = None) -> dict[str, str]:
    """Create (or replace) the automations, notifying through the notification block `block`
    ("slug/name"). With `max_duration`, also one for a flow run still running after that long."""
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification
    from prefect.blocks.core import Block

    notifier = Block.load(block)
    if "notify" not in notifier.get_block_capabilities():
        raise ValueError(f"block {block} is not a notification block")
    block_id = notifier._block_document_id
    on_our_flows = {"prefect.resource.role": "flow", "prefect.resource.name": list(flows)}
    wanted = {
        FAILED: dict(trigger=EventTrigger(expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                                          match={"prefect.resource.id": "prefect.flow-run.*"},
                                          match_related=on_our_flows, posture=Posture.Reactive, threshold=1),
                     subject=FAILED_SUBJECT, body=FAILED_BODY,
                     description="notify when a DataFlux flow run fails or crashes"),
        REGRESSED: dict(trigger=EventTrigger(expect={QUALITY_EVENT}, match={"prefect.resource.id": "dataflux.corpus.*"},
                                             posture=Posture.Reactive, threshold=1),
                        subject=REGRESSED_SUBJECT, body=REGRESSED_BODY,
                        description="notify when a published corpus version is worse than the previous one"),
        EVAL_REGRESSED: dict(trigger=EventTrigger(expect={EVAL_EVENT},
                                                  match={"prefect.resource.id": "eureka.checkpoint.*"},
                                                  posture=Posture.Reactive, threshold=1),
                             subject=EVAL_SUBJECT, body=REGRESSED_BODY,
                             description="notify when a retrained checkpoint scores worse than the best so far"),
    }
    if max_duration is not None:
        wanted["dataflux-flow-run-too-long"] = dict(
            trigger=EventTrigger(after={"prefect.flow-run.Running"},
                                 expect={"prefect.flow-run.Completed", "prefect.flow-run.Failed",
                                         "prefect.flow-run.Crashed", "prefect.flow-run.Cancelled"},
                                 match={"prefect.resource.id": "prefect.flow-run.*"}, match_related=on_our_flows,
                                 for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
                                 within=max_duration),
            subject="DataFlux: flow run {{ flow_run.name }} of {{ flow.name }} runs longer than expected",
            body=f"Still running after {max_duration}.\nflow run: {{{{ flow_run|ui_url }}}}",
            description=f"notify when a DataFlux flow run has not finished within {max_duration}")
    made = {}
    for name, spec in wanted.items():
        remove_automation(name)
        automation = Automation(name=name, description=spec["description"], trigger=spec["trigger"],
                                actions=[SendNotification(block_document_id=block_id, subject=spec["subject"],
                                                          body=spec["body"])]).create()
        made[name] = str(automation.id)
    return made


def remove_automation(name: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for automation in client.read_automations_by_name(name):
            client.delete_automation(automation.id)


def check_quality(run, version: int, bounds: dict | None = None) -> list[dict]:
    """Compare corpus `version`'s history row with the previous version's; beyond the bounds, log and
    emit `dataflux.quality.regressed` (with the figures and the flow run's link) for the alert."""
    from pathlib import Path

    from prefect import get_run_logger
    from prefect.events import emit_event
    from prefect.runtime import flow_run
    from prefect.utilities.urls import url_for

    from dataflux.history import QualityBounds, history, regression_message, regressions

    if not run.table("corpus_history").exists():
        return []
    rows = {r["corpus_version"]: r for r in history(run).to_pylist()}
    earlier = [v for v in rows if v < version]
    if version not in rows or not earlier:
        return []
    previous, new = rows[max(earlier)], rows[version]
    found = regressions(previous, new, QualityBounds(**(bounds or {})))
    if found:
        # prefect.runtime's flow_run.ui_url builds /flow-runs/..., a route the server's UI does not have
        link = url_for("flow-run", obj_id=flow_run.id, url_type="ui") if flow_run.id else None
        message = regression_message(run.uri, previous, new, found, link)
        get_run_logger().warning(message)
        emit_event(QUALITY_EVENT, resource={"prefect.resource.id": f"dataflux.corpus.{Path(run.uri).name}",
                                            "prefect.resource.name": run.table("corpus").uri},
                   payload={"message": message, "run_dir": run.uri, "version": version,
                            "previous_version": previous["corpus_version"], "regressions": found,
                            "flow_run_url": link})
    return found
