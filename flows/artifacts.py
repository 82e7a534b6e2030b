"""What the Prefect UI shows: a table artifact per stage, a progress artifact during long stages, and
the published corpus's card. Artifact keys use lowercase letters, digits and dashes."""

from __future__ import annotations

import re
import time

from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, \
    update_progress_artifact


def key(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def stage_table(stage: str, results: list[dict]) -> None:
    rows = [{"shard": r["shard"], "rows_in": r["stats"]["rows_in"], "rows_out": r["stats"]["rows_out"],
             "rejected": r["stats"]["rejected_total"],
             "rejected_by_reason": ", ".join(f"{k}={v}" for k, v in r["stats"]["rejected"].items()) or "-",
             "already_done": r["stats"]["skipped"], "seconds": r["stats"]["seconds"]} for r in results]
    create_table_artifact(rows, key=key("dataflux", stage),
                          description=f"{stage}: rows in, out, rejected by reason, seconds")


class Progress:
    """A progress artifact for one stage task, updated at most every `every_s` seconds."""

    def __init__(self, stage: str, every_s: float = 2.0):
        self.stage, self.every_s = stage, every_s
        self.total, self.done, self.last, self.id = 0, 0, 0.0, None

    def on_total(self, total: int) -> None:
        self.total = total
        if total:
            self.id = create_progress_artifact(0.0, key=key("dataflux", self.stage, "progress"),
                                               description=f"{self.stage}: share of pending items done")

    def on_progress(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.id and (now - self.last >= self.every_s or self.done >= self.total):
            self.last = now
            update_progress_artifact(self.id, min(100.0, 100.0 * self.done / max(self.total, 1)))


def corpus_card(card: str, corpus_uri: str, version: int, export: str | None, counts: dict) -> None:
    funnel = " → ".join(f"{k} {counts[k]}" for k in ("clips", "annotations", "questions", "verdicts", "kept", "corpus")
                        if k in counts)
    create_markdown_artifact(f"**Corpus** `{corpus_uri}` version **{version}**\n\nExport and report: `{export}`\n\n"
                             f"**Funnel**: {funnel}\n\n---\n\n{card}", key="dataflux-corpus",
                             description="the published corpus: location, funnel and data card")


def corpus_history(rows: list[dict]) -> None:
    """Quality across published versions: one row per corpus version of `corpus_history`."""
    shown = [{"version": r["corpus_version"], "recorded_at": r["recorded_at"], "items": r["corpus_rows"],
              "new_items": r["new_items"], "questions": r["questions"], "kept": r["kept"],
              "yield_questions_to_kept": _ratio(r["kept"], r["questions"]), "kappa": r["kappa"],
              "letters_chi2_p": r["letters_chi2_p"], "letters_balanced": r["letters_balanced"],
              "nodes_covered": f"{r['nodes_covered']}/{r['nodes_total']}", "kept_per_node": r["kept_per_node"]}
             for r in sorted(rows, key=lambda r: r["corpus_version"])]
    create_table_artifact(shown, key="dataflux-corpus-history",
                          description="every published corpus version: items, yield, answerer agreement (kappa), "
                                      "answer-letter balance, taxonomy coverage")


def _ratio(a, b):
    return round(a / b, 4) if a is not None and b else None
