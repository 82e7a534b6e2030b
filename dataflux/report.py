"""What a published corpus version says about itself: a summary (JSON), a data card (README.md) and
a quality report (HTML with PNG plots). Everything is computed from the run folder's tables; the card
and the report are Jinja2 templates under `dataflux/templates/`."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from storage.run_folder import RunFolder
from verifiers.filters import letter_balance

FUNNEL = ("inputs", "clips", "annotated", "questions", "verified", "kept", "corpus")


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Agreement between two answerers on the items both answered, corrected for chance."""
    if not pairs:
        return None
    from sklearn.metrics import cohen_kappa_score

    first, second = zip(*pairs)
    if len(set(first) | set(second)) == 1:  # both always said the same one letter: chance agreement is 1, 0/0
        return 1.0
    return round(float(cohen_kappa_score(first, second)), 4)


@lru_cache(maxsize=1)
def _templates():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(loader=PackageLoader("dataflux", "templates"), autoescape=select_autoescape(["html.txt"]),
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined)


def _read(run: RunFolder, name: str, columns: list[str] | None = None) -> list[dict]:
    table = run.table(name)
    return table.read(columns=columns).to_pylist() if table.exists() else []


def summarize(run: RunFolder, corpus_version: int | None = None) -> dict:
    info = run.read_run_json()
    config = (info.get("invocations") or [{}])[-1].get("config", {})
    rejects = _read(run, "rejects", ["stage", "reason_code", "item_id"])
    by_stage: dict[str, Counter] = defaultdict(Counter)
    for r in rejects:
        by_stage[r["stage"]][r["reason_code"]] += 1
    clips = _read(run, "clips", ["clip_id", "source_uri", "duration_s"])
    notes = _read(run, "annotations", ["clip_id", "tag_content", "tag_pitch", "tag_rate", "tag_loudness",
                                       "tag_quality", "gender", "language", "f0_median_hz", "speech_rate_sps",
                                       "loudness_lufs", "snr_db", "duration_s", "caption_backend",
                                       "caption_model", "asr_model"])
    questions = _read(run, "questions", ["question_id", "round", "node_path", "writer_backend", "writer_model",
                                         "prompt_version", "answer_key"])
    verdicts = _read(run, "verdicts", ["question_id", "round", "answers", "winner", "consistency_with_caption",
                                       "judge_backend", "judge_model", "judge_prompt_version", "blind"])
    kept = _read(run, "kept", ["question_id", "round", "node_path", "answer", "answer_text", "single_source"])
    corpus = run.table("corpus")
    corpus_rows = corpus.num_rows(corpus_version) if corpus.exists() else 0
    sources = sorted({c["source_uri"] for c in clips})
    funnel = {"inputs": len(sources) + by_stage["ingest"].total(), "clips": len(clips), "annotated": len(notes),
              "questions": len(questions), "verified": len(verdicts), "kept": len(kept), "corpus": corpus_rows}
    rounds = defaultdict(lambda: {"questions": 0, "verified": 0, "kept": 0})
    for q in questions:
        rounds[q["round"]]["questions"] += 1
    for v in verdicts:
        rounds[v["round"]]["verified"] += 1
    for k in kept:
        rounds[k["round"]]["kept"] += 1
    for row in rounds.values():
        row["yield"] = round(row["kept"] / row["questions"], 4) if row["questions"] else None
    pairs = [(v["answers"][0]["letter"], v["answers"][1]["letter"]) for v in verdicts
             if len(v["answers"]) >= 2 and v["answers"][0]["letter"] and v["answers"][1]["letter"]]
    nodes = Counter(k["node_path"] for k in kept)
    from dataflux.taxonomy import load_taxonomy

    leaves = [leaf.node_path for leaf in load_taxonomy(config.get("generate", {}).get("taxonomy"))]
    backends = {
        "asr": sorted({n["asr_model"] for n in notes if n.get("asr_model")}),
        "captioner": sorted({f"{n['caption_backend']}:{n['caption_model'] or '-'}" for n in notes
                             if n.get("caption_backend")}),
        "question_writer": sorted({f"{q['writer_backend']}:{q['writer_model'] or '-'}@{q['prompt_version']}"
                                   for q in questions}),
        "answerers": sorted({f"{a['answerer']}={a['backend']}:{a['model'] or '-'}" for v in verdicts
                             for a in v["answers"]}),
        "judge": sorted({f"{v['judge_backend']}:{v['judge_model'] or '-'}@{v['judge_prompt_version']}"
                         for v in verdicts}),
    }
    return {
        "run": run.uri, "corpus_version": corpus_version, "config_hash": config.get("config_hash"),
        "sources": sources[:50], "num_sources": len(sources),
        "audio_hours": round(sum(c["duration_s"] for c in clips) / 3600, 4),
        "throughput": throughput(run),
        "funnel": funnel,
        "yield": {f"{a}->{b}": (round(funnel[b] / funnel[a], 4) if funnel[a] else None)
                  for a, b in zip(FUNNEL, FUNNEL[1:])},
        "rounds": {str(r): rounds[r] for r in sorted(rounds)},
        "rejects": {stage: dict(sorted(c.items())) for stage, c in sorted(by_stage.items())},
        "taxonomy_coverage": {"kept_per_node": dict(sorted(nodes.items())),
                              "nodes_without_items": [p for p in leaves if p not in nodes],
                              "nodes_covered": sum(1 for p in leaves if p in nodes), "nodes_total": len(leaves)},
        "answer_letters": letter_balance(Counter(k["answer"] for k in kept)),
        "keys_per_node": keys_per_node(kept),
        "answerer_agreement": {"cohen_kappa": cohen_kappa(pairs), "both_answered": len(pairs),
                               "verified": len(verdicts)},
        "verdicts": {"winner": dict(Counter(v["winner"] for v in verdicts)),
                     "consistency": dict(Counter(v["consistency_with_caption"] for v in verdicts))},
        "backends": backends,
        "text_answerable": text_answerable_rates(
            questions, verdicts, config.get("filter", {}).get("policy", {}).get("text_answerable_min_hits", 3)),
        "tags": {k: dict(Counter(str(n.get(k)) for n in notes)) for k in
                 ("tag_content", "gender", "tag_pitch", "tag_rate", "tag_loudness", "tag_quality", "language")},
        "measures": {k: [n[k] for n in notes if n.get(k) is not None]
                     for k in ("f0_median_hz", "speech_rate_sps", "loudness_lufs", "snr_db", "duration_s")},
    }


def keys_per_node(kept: list[dict]) -> dict:
    """Per node: how often each option position and each option text is the key (a node whose key is
    nearly always the same text teaches a prior, not listening), and the share of items whose key rests
    on a single source (`verifiers.evidence`)."""
    out = {}
    for node in sorted({k["node_path"] for k in kept}):
        rows = [k for k in kept if k["node_path"] == node]
        texts = Counter(k["answer_text"] for k in rows)
        top, n = texts.most_common(1)[0]
        out[node] = {"kept": len(rows), "positions": {x: sum(k["answer"] == x for k in rows) for x in "ABCD"},
                     "texts": dict(texts.most_common()), "top_text": top, "top_share": round(n / len(rows), 4),
                     "single_source": sum(bool(k.get("single_source")) for k in rows),
                     "single_source_share": round(sum(bool(k.get("single_source")) for k in rows) / len(rows), 4)}
    return out


def text_answerable_rates(questions: list[dict], verdicts: list[dict], min_hits: int) -> dict:
    """Share of verified items the blind answerer (`verifiers.blind`) answers from the text alone, overall,
    per node and per writer. The key is the template's answer key, else the judge's winning letter."""
    from verifiers.blind import is_text_answerable
    from verifiers.policy import winner_index

    by_id = {q["question_id"]: q for q in questions}
    counts: dict[str, dict[str, list[int]]] = {"node": defaultdict(lambda: [0, 0]),
                                               "writer": defaultdict(lambda: [0, 0])}
    total = [0, 0]
    for v in verdicts:
        q = by_id.get(v["question_id"])
        if q is None or not v.get("blind"):
            continue
        key = q.get("answer_key")
        if not key and v["winner"] != "NONE" and len(v["answers"]) > winner_index(v):
            key = v["answers"][winner_index(v)]["letter"]
        flag = is_text_answerable(v["blind"], "ABCD".index(key) if key else None, min_hits)
        if flag is None:
            continue
        writer = f"{q['writer_backend']}:{q['writer_model'] or '-'}"
        for cell in (counts["node"][q["node_path"]], counts["writer"][writer], total):
            cell[0] += int(flag)
            cell[1] += 1

    def rate(cell):
        return {"text_answerable": cell[0], "checked": cell[1],
                "rate": round(cell[0] / cell[1], 4) if cell[1] else None}

    return {"min_hits": min_hits, **rate(total), "per_node": {k: rate(c) for k, c in sorted(counts["node"].items())},
            "per_writer": {k: rate(c) for k, c in sorted(counts["writer"].items())}}


def throughput(run: RunFolder) -> dict:
    """Per step (and shard), the latest run that processed anything (`RUN_DIR/stats/`, written by the step
    driver): items/s and audio hours per wall-clock hour, in all and per node and chain entry."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(f"{run.uri.rstrip('/')}/stats", **(run.storage_options or {}))
    out: dict = {}
    for path in sorted(fs.glob(f"{root}/*.json")):
        with fs.open(path, "r") as f:
            st = json.load(f)
        out[path.rsplit("/", 1)[-1].removesuffix(".json")] = {
            k: st[k] for k in ("rows_in", "seconds", "items_per_s", "audio_hours", "audio_hours_per_hour",
                               "per_node") if k in st}
    return out


def data_card(s: dict) -> str:
    return _templates().get_template("data_card.md.txt").render(s=s, funnel=FUNNEL)


def _plots(s: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    made = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
        made.append(name)

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(list(s["funnel"]), list(s["funnel"].values()), color="#4477aa")
    ax.set_title("Funnel")
    save(fig, "funnel.png")
    reasons = Counter({f"{st}:{r}": n for st, c in s["rejects"].items() for r, n in c.items()})
    fig, ax = plt.subplots(figsize=(6, max(2, 0.3 * len(reasons) + 1)))
    items = reasons.most_common()
    ax.barh([k for k, _ in items][::-1], [n for _, n in items][::-1], color="#cc6677")
    ax.set_title("Reject reasons")
    save(fig, "rejects.png")
    nodes = s["taxonomy_coverage"]["kept_per_node"]
    fig, ax = plt.subplots(figsize=(6, max(2, 0.3 * len(nodes) + 1)))
    ax.barh([k.split(" > ")[-1] for k in nodes][::-1], list(nodes.values())[::-1], color="#117733")
    ax.set_title("Kept items per taxonomy node")
    save(fig, "nodes.png")
    measures = {k: v for k, v in s["measures"].items() if v}
    if measures:
        fig, axes = plt.subplots(1, len(measures), figsize=(3 * len(measures), 2.6))
        for ax, (name, values) in zip(axes if len(measures) > 1 else [axes], measures.items()):
            ax.hist(values, bins=15, color="#888888")
            ax.set_title(name, fontsize=9)
        save(fig, "measures.png")
    return made


def over_time(rows: list[dict]) -> dict:
    """Quality across published versions from `corpus_history` rows (dataflux.history): per version the
    items, yield per stage, answerer agreement, answer-letter balance and coverage; and the kept items
    per taxonomy node, one column per version."""
    from dataflux.history import STAGE_PAIRS

    rows = sorted(rows, key=lambda r: r["corpus_version"])
    per_node = {r["corpus_version"]: json.loads(r.get("kept_per_node") or "{}") for r in rows}
    nodes = sorted({n for counts in per_node.values() for n in counts})
    return {
        "stages": [f"{a}->{b}" for a, b in STAGE_PAIRS],
        "versions": [{"version": r["corpus_version"], "recorded_at": r["recorded_at"], "corpus_rows": r["corpus_rows"],
                      "new_items": r["new_items"], "yield": [r.get(f"yield_{a}_{b}") for a, b in STAGE_PAIRS],
                      "kappa": r["kappa"], "both_answered": r["both_answered"], "letters_chi2_p": r["letters_chi2_p"],
                      "letters_balanced": r["letters_balanced"],
                      "letter_counts": json.loads(r.get("letter_counts") or "{}"),
                      "text_answerable_rate": r.get("text_answerable_rate"),
                      "nodes_covered": r["nodes_covered"], "nodes_total": r["nodes_total"]} for r in rows],
        "nodes": [{"node": n, "counts": [per_node[r["corpus_version"]].get(n, 0) for r in rows]} for n in nodes],
    }


def write_report(s: dict, folder: Path, history: list[dict] | None = None) -> None:
    """README.md (the data card), report.html with plots/ and summary.json, into `folder`. `history`
    (the corpus_history rows, this version's included) adds the report's quality-over-time section."""
    folder.mkdir(parents=True, exist_ok=True)
    card = data_card(s)
    (folder / "README.md").write_text(card)
    (folder / "summary.json").write_text(json.dumps({k: v for k, v in s.items() if k != "measures"},
                                                    indent=2, sort_keys=True))
    plots = _plots(s, folder / "plots")
    html = _templates().get_template("report.html.txt").render(s=s, plots=plots, card=card,
                                                               over_time=over_time(history) if history else None)
    (folder / "report.html").write_text(html)
