"""Quality over time: every published corpus version's summary as a row of `corpus_history`, and the
difference between two versions of a table (rows added and removed, the change in each figure).

`record` is called by publish right after it summarizes a new version; `backfill` adds the versions
published before history existed, from their `published/corpus-vN/summary.json`.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from storage.run_folder import RunFolder

STAGE_PAIRS = (("inputs", "clips"), ("clips", "annotated"), ("annotated", "questions"), ("questions", "verified"),
               ("verified", "kept"))
# The figures compared between versions, in the order they are shown.
FIGURES = ("corpus_rows", "new_items", "inputs", "clips", "annotated", "questions", "verified", "kept",
           *[f"yield_{a}_{b}" for a, b in STAGE_PAIRS], "kappa", "both_answered", "letters_chi2_p",
           "nodes_covered", "nodes_total", "text_answerable_rate", "text_answerable_checked")


def derived(summary: dict) -> dict:
    """The blind-answerable rate (report.text_answerable_rates): share of verified items a text-only
    answerer gets right, and how many items were checked; None where it was not measured. Kept only
    inside the row's `summary` JSON (no column of their own, so corpus_history tables written before they
    existed need no schema change): `history()` and `history_row` derive them."""
    blind = summary.get("text_answerable") or {}
    return {"text_answerable_rate": blind.get("rate"), "text_answerable_checked": blind.get("checked")}


def history_row(summary: dict, previous_rows: int | None = None) -> dict:
    funnel = summary.get("funnel", {})
    letters = summary.get("answer_letters", {})
    agreement = summary.get("answerer_agreement", {})
    coverage = summary.get("taxonomy_coverage", {})
    rows = funnel.get("corpus")
    return {
        "corpus_version": summary["corpus_version"],
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config_hash": summary.get("config_hash"),
        "corpus_rows": rows,
        "new_items": None if rows is None else rows - (previous_rows or 0),
        **{k: funnel.get(k) for k in ("inputs", "clips", "annotated", "questions", "verified", "kept")},
        **{f"yield_{a}_{b}": summary.get("yield", {}).get(f"{a}->{b}") for a, b in STAGE_PAIRS},
        "kappa": agreement.get("cohen_kappa"), "both_answered": agreement.get("both_answered"),
        "letters_chi2_p": letters.get("chi2_p"), "letters_balanced": letters.get("balanced"),
        "letter_counts": json.dumps(letters.get("counts", {}), sort_keys=True),
        "nodes_covered": coverage.get("nodes_covered"), "nodes_total": coverage.get("nodes_total"),
        "kept_per_node": json.dumps(coverage.get("kept_per_node", {}), sort_keys=True),
        "summary": json.dumps({k: v for k, v in summary.items() if k != "measures"}, sort_keys=True, default=str),
        **derived(summary),
    }


def record(run: RunFolder, summary: dict) -> int:
    """Add the summary of corpus version `summary["corpus_version"]` (once: keyed by version)."""
    version = summary["corpus_version"]
    corpus = run.table("corpus")
    previous = corpus.num_rows(version - 1) if version and corpus.exists() else 0
    return run.write("corpus_history", [history_row(summary, previous)], {"stage": "publish"})


def backfill(run: RunFolder) -> list[int]:
    """Record the published versions missing from the history from their export's summary.json."""
    if run.local_path is None:
        return []
    known = set(history(run)["corpus_version"].to_pylist()) if run.table("corpus_history").exists() else set()
    added = []
    for path in sorted((run.local_path / "published").glob("corpus-v*/summary.json"),
                       key=lambda p: int(p.parent.name.removeprefix("corpus-v"))):
        summary = json.loads(path.read_text())
        if summary.get("corpus_version") is not None and summary["corpus_version"] not in known:
            record(run, summary)
            added.append(summary["corpus_version"])
    return added


def history(run: RunFolder) -> pa.Table:
    """The corpus_history table with the `derived` figures as columns (from each row's summary JSON)."""
    table = run.table("corpus_history").read()
    extra = [derived(json.loads(s) if s else {}) for s in table["summary"].to_pylist()]
    table = table.append_column("text_answerable_rate", pa.array([e["text_answerable_rate"] for e in extra],
                                                                 pa.float64()))
    return table.append_column("text_answerable_checked", pa.array([e["text_answerable_checked"] for e in extra],
                                                                   pa.int64()))


def figures(run: RunFolder, version: int) -> dict | None:
    if not run.table("corpus_history").exists():
        return None
    rows = [r for r in history(run).to_pylist() if r["corpus_version"] == version]
    return rows[0] if rows else None


def diff(run: RunFolder, name: str, a: int, b: int, examples: int = 5) -> dict:
    """Rows added and removed (by key) from version `a` to version `b` of table `name`; for the corpus
    also items per taxonomy node and the change in each summary figure (from `corpus_history`)."""
    table = run.table(name)
    key = list(table.key)
    columns = key + (["node_path"] if name == "corpus" else [])
    old, new = table.read(version=a, columns=columns), table.read(version=b, columns=columns)

    def keys(t):
        return {tuple(r[k] for k in key) for r in t.select(key).to_pylist()}

    before, after = keys(old), keys(new)
    added, removed = sorted(after - before), sorted(before - after)
    out = {"table": name, "from": a, "to": b, "rows_from": old.num_rows, "rows_to": new.num_rows,
           "added": len(added), "removed": len(removed), "unchanged": len(before & after),
           "added_examples": ["/".join(map(str, k)) for k in added[:examples]],
           "removed_examples": ["/".join(map(str, k)) for k in removed[:examples]]}
    if name == "corpus":
        na, nb = Counter(old["node_path"].to_pylist()), Counter(new["node_path"].to_pylist())
        out["per_node"] = {n: {"from": na.get(n, 0), "to": nb.get(n, 0), "change": nb.get(n, 0) - na.get(n, 0)}
                           for n in sorted(set(na) | set(nb)) if na.get(n, 0) != nb.get(n, 0)}
        fa, fb = figures(run, a), figures(run, b)
        out["figures"] = None if fa is None or fb is None else {
            f: {"from": fa[f], "to": fb[f], "change": _change(fa[f], fb[f])} for f in FIGURES}
        out["missing_history"] = [v for v, f in ((a, fa), (b, fb)) if f is None]
    return out


def _change(x, y):
    if x is None or y is None:
        return None
    return round(y - x, 6)


def describe_diff(d: dict) -> list[str]:
    lines = [f"{d['table']} version {d['from']} -> {d['to']}: {d['rows_from']} -> {d['rows_to']} rows, "
             f"+{d['added']} added, -{d['removed']} removed, {d['unchanged']} unchanged"]
    if d["added_examples"]:
        lines.append("  added e.g.: " + ", ".join(d["added_examples"]))
    if d["removed_examples"]:
        lines.append("  removed e.g.: " + ", ".join(d["removed_examples"]))
    for node, c in (d.get("per_node") or {}).items():
        lines.append(f"  node {node}: {c['from']} -> {c['to']} ({c['change']:+d})")
    if d.get("figures"):
        lines.append("  figure: from -> to (change)")
        for f, c in d["figures"].items():
            change = "" if c["change"] is None else f" ({c['change']:+g})"
            lines.append(f"  {f}: {c['from']} -> {c['to']}{change}")
    elif d.get("missing_history"):
        lines.append(f"  no corpus_history row for version(s) {', '.join(map(str, d['missing_history']))}: "
                     "summary figures not compared")
    return lines


class QualityBounds(BaseModel):
    """How much worse a new corpus version may be than the previous one before it counts as a
    regression (absolute changes; a figure missing in either version is not compared)."""

    model_config = ConfigDict(extra="forbid")
    max_yield_drop: float = Field(0.10, ge=0, description="per stage: verified->kept 0.80 -> 0.65 drops 0.15")
    max_kappa_drop: float = Field(0.10, ge=0, description="Cohen's kappa between the two answerers")
    min_letters_p: float = Field(0.01, ge=0, le=1, description="answer-letter balance: chi-square p falling below "
                                                               "this (from at or above it) is a regression")
    max_nodes_lost: int = Field(0, ge=0, description="taxonomy leaves with items")
    max_text_answerable_rise: float = Field(0.05, ge=0, description="blind-answerable rate (share of verified "
                                            "items a text-only answerer gets right): 0.04 -> 0.12 rises 0.08")


def regressions(previous: dict, new: dict, bounds: QualityBounds | None = None) -> list[dict]:
    """The figures of `new` (a corpus_history row) beyond `bounds` against `previous`."""
    b = bounds or QualityBounds()
    found = []

    def check(figure: str, limit, worse: bool, rule: str):
        if worse:
            found.append({"figure": figure, "from": previous[figure], "to": new[figure],
                          "change": _change(previous[figure], new[figure]), "bound": rule, "limit": limit})

    def known(figure: str) -> bool:
        return previous.get(figure) is not None and new.get(figure) is not None

    for a, bb in STAGE_PAIRS:
        f = f"yield_{a}_{bb}"
        if known(f):
            check(f, b.max_yield_drop, previous[f] - new[f] > b.max_yield_drop + 1e-12, f"drop <= {b.max_yield_drop}")
    if known("kappa"):
        check("kappa", b.max_kappa_drop, previous["kappa"] - new["kappa"] > b.max_kappa_drop + 1e-12,
              f"drop <= {b.max_kappa_drop}")
    if known("letters_chi2_p"):
        check("letters_chi2_p", b.min_letters_p,
              new["letters_chi2_p"] < b.min_letters_p <= previous["letters_chi2_p"], f"p >= {b.min_letters_p}")
    if known("nodes_covered"):
        check("nodes_covered", b.max_nodes_lost, previous["nodes_covered"] - new["nodes_covered"] > b.max_nodes_lost,
              f"nodes lost <= {b.max_nodes_lost}")
    if known("text_answerable_rate"):
        check("text_answerable_rate", b.max_text_answerable_rise,
              new["text_answerable_rate"] - previous["text_answerable_rate"] > b.max_text_answerable_rise + 1e-12,
              f"rise <= {b.max_text_answerable_rise}")
    return found


def regression_message(run_uri: str, previous: dict, new: dict, found: list[dict], link: str | None) -> str:
    lines = [f"DataFlux corpus {run_uri} version {new['corpus_version']} regressed against version "
             f"{previous['corpus_version']} ({new['corpus_rows']} items, {new['new_items']} new):"]
    for r in found:
        lines.append(f"- {r['figure']}: {r['from']} -> {r['to']} ({r['change']:+g}; bound: {r['bound']})")
    if new.get("letter_counts"):
        lines.append(f"answer letters now: {new['letter_counts']}")
    lines.append(f"flow run: {link or 'not run from a flow'}")
    return "\n".join(lines)
