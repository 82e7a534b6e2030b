"""Scores for predictions, separate from inference (so either can be re-run alone).

- multiple choice: anchored letter extraction, then option-text matching, else "unparsed", which is
  wrong and stays in the denominator; accuracy overall and per category;
- ASR: normalised corpus WER = sum(S+D+I) / sum(N_ref) (characters for zh/ja/th), with S/D/I and the
  number of empty hypotheses;
- paralinguistic labels: the prediction mapped through a synonym table (unmapped = wrong); accuracy
  and macro-F1;
- each benchmark's own rule beside ours: MMAU/MMAR's official string match (`official_accuracy`), IFEval's
  instruction checkers (prompt/instruction level, strict/loose), AdvBench's refusal-phrase rule.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from functools import lru_cache
from importlib import resources
from pathlib import Path

from dataflux.mcq import LETTERS, extract_letter
from dataflux.wer import errors


@lru_cache(maxsize=1)
def synonyms() -> dict[str, dict[str, list[str]]]:
    import yaml

    return yaml.safe_load(resources.files("model").joinpath("synonyms.yaml").read_text())


def map_label(text: str, family: str, table: dict | None = None) -> str | None:
    table = table or synonyms()[family]
    low = (text or "").lower()
    hits = {label for label, words in table.items()
            if any(re.search(rf"(?<![\w-]){re.escape(w.lower())}(?![\w-])", low) for w in words)}
    return hits.pop() if len(hits) == 1 else None


def gold_letter(answer: str, options: list[str] | None) -> str | None:
    """A letter, or an option's text turned into its letter (MMAU files give the text)."""
    if options is None:  # options only spoken (VoiceBench): the answer is the letter
        return answer if answer in LETTERS else None
    if answer in LETTERS[:len(options)]:
        return answer
    matches = [i for i, o in enumerate(options) if o.strip().lower() == str(answer).strip().lower()]
    return LETTERS[matches[0]] if len(matches) == 1 else None


def score_one(p: dict) -> dict:
    task = p["task"]
    if task == "mcq":
        letter, how = extract_letter(p["prediction"], p["options"])
        gold = gold_letter(p["answer"], p["options"])
        out = {**p, "predicted": letter, "parse": how, "gold": gold, "correct": letter is not None and letter == gold}
        if p.get("official") == "string_match":  # MMAU/MMAR's own rule on the raw prediction
            from model.benchmarks.audioqa import string_match

            out["official_correct"] = string_match(p["answer"], p["prediction"], p["options"])
        elif p.get("official") == "voicebench_mcq":  # VoiceBench's letter rule, no random fill-in
            from model.benchmarks.voicebench import voicebench_letter

            official = voicebench_letter(p["prediction"])
            out.update(official_predicted=official, official_correct=official is not None and official == gold)
        return out
    if task == "ifeval":
        from model.benchmarks.ifeval import verdict

        return {**p, **verdict(p["prompt_text"], p["instruction_id_list"], p["kwargs"], p["prediction"])}
    if task == "refusal":
        from model.benchmarks.safety import is_refusal

        return {**p, "refused": is_refusal(p["prediction"])}
    if task == "asr":
        counts = errors(p["reference"], p["prediction"], p.get("language") or "en")
        return {**p, "S": counts.substitutions, "D": counts.deletions, "I": counts.insertions,
                "N": counts.reference_words, "empty": bool(counts.empty_hypotheses)}
    if task == "label":
        family = p.get("family", "emotion")
        mapped = map_label(p["prediction"], family)
        return {**p, "predicted": mapped, "correct": mapped is not None and mapped == p["label"]}
    raise ValueError(f"unknown task {task!r} (mcq, asr, label, ifeval, refusal)")


def macro_f1(pairs: list[tuple[str, str | None]]) -> float:
    """F1 averaged over the gold labels; an unmapped prediction (None) is wrong for every label."""
    if not pairs:
        return 0.0
    from sklearn.metrics import f1_score

    gold = [g for g, _ in pairs]
    predicted = [p if p is not None else "\0unmapped" for _, p in pairs]
    return float(f1_score(gold, predicted, labels=sorted(set(gold)), average="macro", zero_division=0.0))


def summarize(scored: list[dict]) -> dict:
    metrics: dict = {}
    mcq = [s for s in scored if s["task"] == "mcq"]
    if mcq:
        per = defaultdict(list)
        for s in mcq:
            per[s.get("category") or "-"].append(s["correct"])
        unparsed = sum(s["predicted"] is None for s in mcq)
        metrics["mcq"] = {"accuracy": round(sum(s["correct"] for s in mcq) / len(mcq), 4), "n": len(mcq),
                          "unparsed": unparsed, "unparsed_rate": round(unparsed / len(mcq), 4),
                          "per_category": {k: {"accuracy": round(sum(v) / len(v), 4), "n": len(v)}
                                           for k, v in sorted(per.items())}}
        official = [s["official_correct"] for s in mcq if "official_correct" in s]
        if official:
            metrics["mcq"]["official_accuracy"] = round(sum(official) / len(official), 4)
        if any("official_predicted" in s for s in mcq):  # the benchmark's own extraction failures (VoiceBench)
            metrics["mcq"]["official_unparsed_rate"] = round(
                sum(s.get("official_predicted") is None for s in mcq) / len(mcq), 4)
    asr = [s for s in scored if s["task"] == "asr"]
    if asr:
        t = Counter()
        for s in asr:
            t.update({k: s[k] for k in ("S", "D", "I", "N")})
        metrics["asr"] = {"wer": round((t["S"] + t["D"] + t["I"]) / t["N"], 4) if t["N"] else None,
                          "substitutions": t["S"], "deletions": t["D"], "insertions": t["I"],
                          "reference_words": t["N"], "empty_hypotheses": sum(s["empty"] for s in asr), "n": len(asr)}
    label = [s for s in scored if s["task"] == "label"]
    if label:
        metrics["label"] = {"accuracy": round(sum(s["correct"] for s in label) / len(label), 4),
                            "macro_f1": round(macro_f1([(s["label"], s["predicted"]) for s in label]), 4),
                            "unmapped": sum(s["predicted"] is None for s in label), "n": len(label)}
    ifeval = [s for s in scored if s["task"] == "ifeval"]
    if ifeval:
        from model.benchmarks.ifeval import summarize as ifeval_summary

        metrics["ifeval"] = ifeval_summary(ifeval)
    refusal = [s for s in scored if s["task"] == "refusal"]
    if refusal:
        metrics["refusal"] = {"refusal_rate": round(sum(s["refused"] for s in refusal) / len(refusal), 4),
                              "n": len(refusal)}
        judged = [s for s in refusal if s.get("judge_refused") is not None]
        if any("judge_refused" in s for s in refusal):  # the judge's confirmation beside the phrase rule
            metrics["refusal"].update(
                judge_refusal_rate=round(sum(s["judge_refused"] for s in judged) / len(judged), 4) if judged else None,
                judge_agreement=round(sum(s["judge_refused"] == s["refused"] for s in judged) / len(judged), 4)
                if judged else None, judge_failed=sum("judge_refused" in s and s["judge_refused"] is None
                                                      for s in refusal))
    return metrics


def score_file(predictions: Path, out_dir: Path, meta: dict) -> dict:
    from model.benchmarks.common import jsonl

    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]  # must exist
    # an LLM judge's refusal verdicts (model/benchmarks/safety.py), when asked for
    verdicts = {v["id"]: v["judge_refused"] for v in jsonl(out_dir / "judge.jsonl")}
    rows = [{**r, "judge_refused": verdicts[r["id"]]} if r["id"] in verdicts else r for r in rows]
    scored = [score_one(r) for r in rows]
    with open(out_dir / "scored.jsonl", "w") as f:
        for s in scored:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    summary = {**meta, "metrics": summarize(scored), "counts": dict(Counter(s["task"] for s in scored))}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "report.md").write_text(report(summary))
    return summary


def report(summary: dict) -> str:
    lines = [f"# Evaluation: {summary.get('checkpoint')}", "", f"Data: `{summary.get('dataset')}`", "",
             f"Decoding: `{json.dumps(summary.get('decode', {}), sort_keys=True)}`", ""]
    m = summary["metrics"]
    if "mcq" in m:
        lines += [f"## Multiple choice: accuracy {m['mcq']['accuracy']:.1%} of {m['mcq']['n']} "
                  f"({m['mcq']['unparsed']} unparsed, counted wrong)", "",
                  "| category | accuracy | n |", "|---|---:|---:|",
                  *[f"| {k} | {v['accuracy']:.1%} | {v['n']} |" for k, v in m["mcq"]["per_category"].items()], ""]
    if "asr" in m:
        a = m["asr"]
        lines += [f"## ASR: WER {a['wer']} (S={a['substitutions']} D={a['deletions']} I={a['insertions']}, "
                  f"N={a['reference_words']}, {a['empty_hypotheses']} empty of {a['n']})", ""]
    if "mcq" in m and "official_accuracy" in m["mcq"]:
        rule = "VoiceBench's letter rule, failures wrong" if "official_unparsed_rate" in m["mcq"] else \
            "string match (MMAU/MMAR rule, raw prediction)"
        lines += [f"Official {rule}: {m['mcq']['official_accuracy']:.1%}; our extraction could not read "
                  f"{m['mcq']['unparsed_rate']:.1%} of the answers"
                  + (f", VoiceBench's {m['mcq']['official_unparsed_rate']:.1%}" if "official_unparsed_rate" in m["mcq"]
                     else ""), ""]
    if "ifeval" in m:
        i = m["ifeval"]
        lines += [f"## IFEval: prompt-level strict {i['prompt_level_strict']} loose {i['prompt_level_loose']}, "
                  f"instruction-level strict {i['inst_level_strict']} loose {i['inst_level_loose']} "
                  f"({i['skipped_instructions']} of {i['instructions']} instructions skipped: NLTK data not installed)",
                  ""]
    if "refusal" in m:
        lines += [f"## AdvBench: refusal rate {m['refusal']['refusal_rate']:.1%} of {m['refusal']['n']} "
                  "(VoiceBench refusal-phrase rule)"
                  + (f"; LLM judge: {m['refusal']['judge_refusal_rate']} refused, agreement "
                     f"{m['refusal']['judge_agreement']}, {m['refusal']['judge_failed']} without a verdict"
                     if "judge_failed" in m["refusal"] else ""), ""]
    if "label" in m:
        lines += [f"## Labels: accuracy {m['label']['accuracy']:.1%}, macro-F1 {m['label']['macro_f1']}, "
                  f"{m['label']['unmapped']} unmapped of {m['label']['n']}", ""]
    return "\n".join(lines)


# Which metrics are better higher, and which one decides a comparison.
HIGHER_IS_BETTER = {("mcq", "accuracy"): True, ("asr", "wer"): False, ("label", "accuracy"): True,
                    ("label", "macro_f1"): True}


def compare(a: dict, b: dict) -> dict:
    """B against A, metric by metric; the verdict follows the first primary metric both have."""
    rows = []
    for (task, name), higher in HIGHER_IS_BETTER.items():
        va, vb = a["metrics"].get(task, {}).get(name), b["metrics"].get(task, {}).get(name)
        if va is None or vb is None:
            continue
        delta = vb - va
        rows.append({"metric": f"{task}.{name}", "a": va, "b": vb, "delta": round(delta, 4),
                     "b_better": (delta > 0) if higher else (delta < 0), "tie": delta == 0})
    primary = rows[0] if rows else None
    verdict = "incomparable" if primary is None else "tie" if primary["tie"] else \
        "better" if primary["b_better"] else "worse"
    return {"a": a.get("checkpoint"), "b": b.get("checkpoint"), "metrics": rows, "verdict": verdict,
            "decided_by": primary["metric"] if primary else None}
