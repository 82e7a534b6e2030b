"""A suite: benchmarks and their local paths in one YAML file, run one after another into one table laid
out as the paper's (benchmarks as columns, grouped: ASR, understanding and reasoning, paralinguistics,
instruction following, safety, dense captioning), with per-benchmark detail; and two runs compared with
paired bootstrap 95% intervals on the deltas.

    # suite.yaml (paths relative to this file)
    batch_size: 8
    benchmarks:
      - {name: LibriSpeech-clean, reader: librispeech, path: data/LibriSpeech/test-clean}
      - {name: AISHELL-2, reader: kaldi, path: data/AISHELL-2/iOS/test, options: {language: zh}}
      - {name: MMAU, reader: mmau, path: data/MMAU/mmau-test-mini.json, limit: 200}
      - name: MMAU-caption
        reader: mmau
        path: data/MMAU/mmau-test-mini.json
        caption_qa: {base_url: "http://127.0.0.1:8080/v1", model: gpt-oss-120b}
      # paralinguistics: a label file in our own schema (JSONL or Parquet rows with task: label, audio,
      # question, label, family; see model/evaluate.py), scored by accuracy and macro-F1
      - {name: Emotion, kind: labels, path: data/emotion.jsonl}

Each benchmark writes its folder `OUT/NAME/` (predictions.jsonl appended batch by batch, so a killed run
resumes where it stopped, per benchmark); `OUT/table.md` and `OUT/table.json` hold the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typing import Literal

from pydantic import Field

from dataflux.llm.client import Endpoint
from dataflux.settings import Section

GROUPS = ("ASR", "Understanding and reasoning", "Paralinguistics", "Instruction following", "Safety",
          "Dense captioning")
GROUP_UNITS = {"ASR": "WER/CER %, lower is better", "Understanding and reasoning": "accuracy %",
               "Paralinguistics": "label accuracy % (macro-F1 in the detail)",
               "Instruction following": "IFEval prompt-level strict %", "Safety": "AdvBench refusal rate %",
               "Dense captioning": "accuracy % of a text LLM answering from the caption"}
ASR_READERS = {"librispeech", "fleurs", "kaldi"}
QA_READERS = {"mmau", "mmar", "mmsu", "voicebench-openbookqa", "voicebench-mmsu"}


class SuiteBenchmark(Section):
    name: str  # the table's column
    reader: str | None = None  # a reader of model.benchmarks.READERS (kind: benchmark)
    kind: Literal["benchmark", "labels"] = "benchmark"  # labels: a file of `label` rows in our own schema
    path: str
    limit: int | None = Field(default=None, ge=1)
    options: dict = Field(default_factory=dict)  # passed to the reader (e.g. kaldi's language, fleurs' split)
    caption_qa: Endpoint | None = None  # dense captioning: this endpoint's LLM answers from the model's caption
    judge: Endpoint | None = None  # AdvBench: this endpoint's LLM also judges each response (refused or not)


class Suite(Section):
    batch_size: int = Field(default=8, ge=1)
    max_new_tokens: int | None = Field(default=None, ge=1)  # one cap for every task (default: per task)
    benchmarks: list[SuiteBenchmark] = Field(min_length=1)


def load_suite(path: str | Path) -> Suite:
    import yaml

    from model.benchmarks import READERS

    path = Path(path)
    raw = yaml.safe_load(path.read_text()) or {}
    suite = Suite.model_validate(raw)
    names = [b.name for b in suite.benchmarks]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: benchmark names must be unique (they name the table's columns): {names}")
    fixed = []
    for b in suite.benchmarks:
        if b.kind == "labels":
            if b.reader is not None or b.caption_qa is not None or b.judge is not None or b.options:
                raise ValueError(f"{path}: benchmark {b.name}: kind labels is a label file in our schema; it "
                                 "takes name, path and limit only (no reader, options, caption_qa or judge)")
            if Path(b.path).suffix not in (".jsonl", ".parquet"):
                raise ValueError(f"{path}: benchmark {b.name}: kind labels needs a .jsonl or .parquet file, "
                                 f"not {b.path}")
        elif b.reader is None:
            raise ValueError(f"{path}: benchmark {b.name}: give a reader ({', '.join(READERS)}), or kind: labels "
                             "for a label file in our schema")
        elif b.reader not in READERS:
            raise ValueError(f"{path}: benchmark {b.name}: unknown reader {b.reader!r}; known: {', '.join(READERS)}")
        if b.caption_qa is not None and b.reader not in ("mmau", "mmar"):
            raise ValueError(f"{path}: benchmark {b.name}: caption_qa scores MMAU or MMAR questions only")
        if b.judge is not None and b.reader != "voicebench-advbench":
            raise ValueError(f"{path}: benchmark {b.name}: judge confirms AdvBench refusals only")
        p = Path(b.path)
        fixed.append(b.model_copy(update={"path": str(p if p.is_absolute() else (path.parent / p).resolve())}))
    return suite.model_copy(update={"benchmarks": fixed})


def group_of(b: SuiteBenchmark) -> str:
    if b.kind == "labels":
        return "Paralinguistics"
    if b.caption_qa is not None:
        return "Dense captioning"
    if b.reader in ASR_READERS:
        return "ASR"
    if b.reader in QA_READERS:
        return "Understanding and reasoning"
    return "Instruction following" if b.reader == "voicebench-ifeval" else "Safety"


def headline(summary: dict) -> tuple[str, float | None, bool]:
    """(metric, value in %, higher is better) of one benchmark: the benchmark's own rule where it has one."""
    m = summary["metrics"]
    if "label" in m:
        return "accuracy", _pct(m["label"]["accuracy"]), True
    if "asr" in m:
        return "wer", _pct(m["asr"]["wer"]), False
    if "mcq" in m:
        if "official_accuracy" in m["mcq"]:
            return "official_accuracy", _pct(m["mcq"]["official_accuracy"]), True
        return "accuracy", _pct(m["mcq"]["accuracy"]), True
    if "ifeval" in m:
        return "prompt_level_strict", _pct(m["ifeval"]["prompt_level_strict"]), True
    return "refusal_rate", _pct(m["refusal"]["refusal_rate"]), True


def _pct(v):
    return None if v is None else round(100 * v, 2)


def run_suite(checkpoint: str, suite: Suite, out_dir: str | Path, score_only: bool = False,
              progress=print) -> dict:
    from model.evaluate import DECODE, EvalConfig, evaluate

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    caps = {t: suite.max_new_tokens for t in DECODE} if suite.max_new_tokens else {}
    config = EvalConfig(batch_size=suite.batch_size, max_new_tokens=caps)
    columns = []
    for b in suite.benchmarks:
        if b.kind == "labels":
            _only_label_rows(b)
        summary = evaluate(checkpoint, b.path, out_dir / b.name, config, score_only=score_only, benchmark=b.reader,
                           limit=b.limit, options=b.options, caption_qa=b.caption_qa, judge=b.judge)
        metric, value, higher = headline(summary)
        columns.append({"name": b.name, "group": group_of(b), "reader": b.reader or b.kind, "metric": metric,
                        "value": value, "higher_is_better": higher, "n": summary["samples"],
                        "detail": f"{b.name}/report.md", "metrics": summary["metrics"]})
        progress(f"{b.name}: {metric} {value} (n={summary['samples']}, {summary['inferred_this_run']} inferred now)")
    columns.sort(key=lambda c: GROUPS.index(c["group"]))  # stable: suite order within a group
    table = {"checkpoint": str(checkpoint), "columns": columns}
    (out_dir / "table.json").write_text(json.dumps(table, indent=2))
    (out_dir / "table.md").write_text(table_markdown(table))
    return table


def _only_label_rows(b: SuiteBenchmark) -> None:
    """A `labels` entry's file holds label rows only (its column is their accuracy), checked before inference."""
    path = Path(b.path)
    if not path.exists():
        raise FileNotFoundError(f"benchmark {b.name}: {path} does not exist")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        tasks = pq.read_table(path, columns=["task"]).column("task").to_pylist() if "task" in names else []
    else:
        tasks = [json.loads(line).get("task") for line in path.read_text().splitlines() if line.strip()]
    other = sorted({str(t) for t in tasks if t != "label"})
    if not tasks or other:
        raise ValueError(f"benchmark {b.name}: kind labels needs rows with task: label only; {path} has "
                         + (f"task {', '.join(other)}" if other else "none"))


def table_markdown(table: dict) -> str:
    cols = table["columns"]
    groups = [c["group"] for c in cols]
    group_row = [g if i == 0 or groups[i - 1] != g else "" for i, g in enumerate(groups)]
    lines = [f"# Evaluation: {table['checkpoint']}", "",
             "| " + " | ".join(group_row) + " |", "|" + "---:|" * len(cols),
             "| " + " | ".join(f"**{c['name']}**" for c in cols) + " |",
             "| " + " | ".join("-" if c["value"] is None else f"{c['value']:.2f}" for c in cols) + " |", "",
             *[f"- {g}: {GROUP_UNITS[g]}" for g in GROUPS if g in groups], "",
             "| benchmark | metric | value | n | extraction failures | detail |", "|---|---|---:|---:|---:|---|"]
    for c in cols:
        failed = c["metrics"].get("mcq", {}).get("unparsed_rate")
        if "label" in c["metrics"]:  # labels the synonym table could not map
            failed = c["metrics"]["label"]["unmapped"] / c["metrics"]["label"]["n"]
        lines.append(f"| {c['name']} | {c['metric']} | {c['value']} | {c['n']} | "
                     f"{'' if failed is None else f'{100 * failed:.1f}%'} | [{c['detail']}]({c['detail']}) |")
    return "\n".join(lines) + "\n"


# --- comparing two suite runs -----------------------------------------------------------------------------

def _per_sample(scored: list[dict], metric: str):
    """(ids, numerators, denominators): the metric is sum(num) / sum(den) over any resample."""
    rows = [s for s in scored if metric != "prompt_level_strict" or s.get("prompt_strict") is not None]
    if metric == "wer":
        num, den = [s["S"] + s["D"] + s["I"] for s in rows], [s["N"] for s in rows]
    else:
        key = {"official_accuracy": "official_correct", "accuracy": "correct", "prompt_level_strict": "prompt_strict",
               "refusal_rate": "refused"}[metric]
        num, den = [float(s[key]) for s in rows], [1.0] * len(rows)
    return [s["id"] for s in rows], np.array(num, float), np.array(den, float)


def bootstrap_delta(a: list[dict], b: list[dict], metric: str, resamples: int = 2000, seed: int = 0) -> dict:
    """B - A in percentage points on the samples both runs scored, with a paired percentile bootstrap 95%
    interval (the same resampled items for both runs)."""
    ida, na, da = _per_sample(a, metric)
    idb, nb, db = _per_sample(b, metric)
    common = sorted(set(ida) & set(idb))
    ia, ib = {k: i for i, k in enumerate(ida)}, {k: i for i, k in enumerate(idb)}
    sa, sb = [ia[k] for k in common], [ib[k] for k in common]
    na, da, nb, db = na[sa], da[sa], nb[sb], db[sb]
    if not common or da.sum() == 0 or db.sum() == 0:
        return {"n": len(common), "delta": None, "ci95": None}
    delta = 100 * (nb.sum() / db.sum() - na.sum() / da.sum())
    idx = np.random.default_rng(seed).integers(0, len(common), (resamples, len(common)))
    with np.errstate(invalid="ignore", divide="ignore"):
        deltas = 100 * (nb[idx].sum(1) / db[idx].sum(1) - na[idx].sum(1) / da[idx].sum(1))
    deltas = deltas[np.isfinite(deltas)]
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {"n": len(common), "delta": round(float(delta), 2), "ci95": [round(float(low), 2), round(float(high), 2)]}


def compare_runs(a_dir: str | Path, b_dir: str | Path, resamples: int = 2000, seed: int = 0) -> dict:
    """Run B against run A, benchmark by benchmark (the columns both have). A regression is a delta whose
    whole 95% interval lies on the worse side of zero; an improvement, on the better side."""
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    ta, tb = (json.loads((d / "table.json").read_text()) for d in (a_dir, b_dir))
    b_cols = {c["name"]: c for c in tb["columns"]}
    rows = []
    for ca in ta["columns"]:
        cb = b_cols.get(ca["name"])
        if cb is None or cb["metric"] != ca["metric"]:
            continue
        scored = [[json.loads(line) for line in (d / ca["name"] / "scored.jsonl").read_text().splitlines()
                   if line.strip()] for d in (a_dir, b_dir)]
        result = bootstrap_delta(*scored, ca["metric"], resamples, seed)
        verdict = "incomparable"
        if result["ci95"] is not None:
            low, high = result["ci95"]
            worse, better = (high < 0, low > 0) if ca["higher_is_better"] else (low > 0, high < 0)
            verdict = "regression" if worse else "improvement" if better else "within noise"
        rows.append({"benchmark": ca["name"], "group": ca["group"], "metric": ca["metric"], "a": ca["value"],
                     "b": cb["value"], "higher_is_better": ca["higher_is_better"], **result, "verdict": verdict})
    return {"a": ta["checkpoint"], "b": tb["checkpoint"], "benchmarks": rows,
            "regressions": [r["benchmark"] for r in rows if r["verdict"] == "regression"]}


def compare_markdown(result: dict) -> str:
    lines = [f"B `{result['b']}` against A `{result['a']}` (paired bootstrap, 95% intervals)", "",
             "| benchmark | metric | A | B | delta | 95% interval | n | verdict |",
             "|---|---|---:|---:|---:|---|---:|---|"]
    for r in result["benchmarks"]:
        ci = "-" if r["ci95"] is None else f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]"
        delta = "-" if r["delta"] is None else f"{r['delta']:+.2f}"  # None when a run scored nothing
        flag = "**REGRESSION**" if r["verdict"] == "regression" else r["verdict"]
        lines.append(f"| {r['benchmark']} | {r['metric']} | {r['a']} | {r['b']} | {delta} | {ci} | {r['n']} | {flag} |")
    return "\n".join(lines) + "\n"
