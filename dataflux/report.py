"""What a published corpus version says about itself: a summary (JSON), a data card (README.md) and
a quality report (HTML with PNG plots). Everything is computed from the run folder's tables, read as
Arrow tables of the columns needed and counted with pyarrow.compute; the card and the report are
Jinja2 templates under `dataflux/templates/`."""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from storage.run_folder import RunFolder
from storage.schemas import VERDICTS
from verifiers.filters import letter_balance

FUNNEL = ("inputs", "clips", "annotated", "questions", "verified", "kept", "corpus")
# The answers' fields the summary reads: reasoning, raw output and trace (most of the verdicts table) are left out
ANSWERS = pa.list_(pa.struct([(f, pa.string()) for f in ("answerer", "backend", "model", "letter")]))
VERDICT_COLUMNS = ["question_id", "round", "answers", "winner", "consistency_with_caption", "judge_backend",
                   "judge_model", "judge_prompt_version", "blind"]
TAGS = ("tag_content", "gender", "tag_pitch", "tag_rate", "tag_loudness", "tag_quality", "language")
MEASURES = ("f0_median_hz", "speech_rate_sps", "loudness_lufs", "snr_db", "duration_s")


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


def _counts(column: pa.ChunkedArray) -> dict:
    """Value -> rows, in order of first appearance (as a Counter over the rows)."""
    return {row["values"]: row["counts"] for row in pc.value_counts(column).to_pylist()}


def _distinct(table: pa.Table, columns: list[str]) -> list[dict]:
    return table.group_by(columns).aggregate([]).to_pylist()


def _truthy(strings: pa.ChunkedArray) -> pa.ChunkedArray:
    """False where a string is null or empty."""
    return pc.fill_null(pc.not_equal(strings, ""), False)


def _letter(answers: pa.ChunkedArray, i: int) -> pa.ChunkedArray:
    """Each verdict's i-th answer's letter; null where it has no i-th answer."""
    padded = pc.list_slice(answers, i, i + 1, return_fixed_size_list=True)
    return pc.struct_field(pc.list_element(padded, 0), "letter")


def _slim(verdicts: pa.Table) -> pa.Table:
    i = verdicts.schema.get_field_index("answers")
    return verdicts.set_column(i, "answers", verdicts["answers"].cast(ANSWERS))


def _verdicts(run: RunFolder) -> pa.Table:
    """VERDICT_COLUMNS in key order, the answers cut to ANSWERS one chunk at a time (their reasoning,
    raw output and traces are never held whole)."""
    chunks = [_slim(c) for c in run.table("verdicts").scan(VERDICT_COLUMNS)]
    return pa.concat_tables([_slim(VERDICTS.empty_table().select(VERDICT_COLUMNS)), *chunks]).sort_by("question_id")


def summarize(run: RunFolder, corpus_version: int | None = None) -> dict:
    info = run.read_run_json()
    config = (info.get("invocations") or [{}])[-1].get("config", {})
    rejects = _rejects(run)
    # each read names its table's key, so that rows come sorted by it (first-seen orders, measures)
    clips = run.table("clips").read(columns=["clip_id", "source_uri", "duration_s"])
    notes = run.table("annotations").read(columns=["clip_id", *TAGS, *MEASURES, "caption_backend",
                                                   "caption_model", "asr_model"])
    questions = run.table("questions").read(columns=["question_id", "round", "node_path", "writer_backend",
                                                     "writer_model", "prompt_version", "answer_key"])
    verdicts = _verdicts(run)
    kept = run.table("kept").read(columns=["question_id", "round", "node_path", "answer", "answer_text",
                                           "single_source"])
    corpus = run.table("corpus")
    corpus_rows = corpus.num_rows(corpus_version) if corpus.exists() else 0
    sources = sorted(pc.unique(clips["source_uri"]).to_pylist())
    funnel = {"inputs": len(sources) + sum(rejects["ingest"].values()), "clips": clips.num_rows,
              "annotated": notes.num_rows, "questions": questions.num_rows, "verified": verdicts.num_rows,
              "kept": kept.num_rows, "corpus": corpus_rows}
    first, second = _letter(verdicts["answers"], 0), _letter(verdicts["answers"], 1)
    both = pc.and_(_truthy(first), _truthy(second))
    pairs = list(zip(first.filter(both).to_pylist(), second.filter(both).to_pylist()))
    nodes = dict(sorted(_counts(kept["node_path"]).items()))
    from dataflux.taxonomy import load_taxonomy

    leaves = [leaf.node_path for leaf in load_taxonomy(config.get("generate", {}).get("taxonomy"))]
    return {
        "run": run.uri, "corpus_version": corpus_version, "config_hash": config.get("config_hash"),
        "sources": sources[:50], "num_sources": len(sources),
        "audio_hours": round((pc.sum(clips["duration_s"]).as_py() or 0) / 3600, 4),
        "throughput": throughput(run),
        "funnel": funnel,
        "yield": {f"{a}->{b}": (round(funnel[b] / funnel[a], 4) if funnel[a] else None)
                  for a, b in zip(FUNNEL, FUNNEL[1:])},
        "rounds": _rounds(questions, verdicts, kept),
        "rejects": rejects,
        "taxonomy_coverage": {"kept_per_node": nodes,
                              "nodes_without_items": [p for p in leaves if p not in nodes],
                              "nodes_covered": sum(1 for p in leaves if p in nodes), "nodes_total": len(leaves)},
        "answer_letters": letter_balance(Counter(_counts(kept["answer"]))),
        "keys_per_node": keys_per_node(kept),
        "answerer_agreement": {"cohen_kappa": cohen_kappa(pairs), "both_answered": len(pairs),
                               "verified": verdicts.num_rows},
        "verdicts": {"winner": _counts(verdicts["winner"]),
                     "consistency": _counts(verdicts["consistency_with_caption"])},
        "backends": _backends(notes, questions, verdicts),
        "text_answerable": text_answerable_rates(
            questions, verdicts, config.get("filter", {}).get("policy", {}).get("text_answerable_min_hits", 3)),
        "tags": {k: _counts(pc.fill_null(notes[k], "None")) for k in TAGS},
        "measures": {k: pc.drop_null(notes[k]).to_pylist() for k in MEASURES},
    }


def _rejects(run: RunFolder) -> dict:
    """Stage -> reason -> rejects, sorted; "ingest" always listed (the funnel's inputs count its rejects)."""
    rejects = run.table("rejects").read(columns=["stage", "reason_code"])
    by_stage: dict[str, dict[str, int]] = {"ingest": {}}
    for row in rejects.group_by(["stage", "reason_code"]).aggregate([([], "count_all")]).to_pylist():
        by_stage.setdefault(row["stage"], {})[row["reason_code"]] = row["count_all"]
    return {stage: dict(sorted(c.items())) for stage, c in sorted(by_stage.items())}


def _rounds(questions: pa.Table, verdicts: pa.Table, kept: pa.Table) -> dict:
    counts = {"questions": _counts(questions["round"]), "verified": _counts(verdicts["round"]),
              "kept": _counts(kept["round"])}
    out = {}
    for r in sorted(set().union(*counts.values())):
        row = {k: c.get(r, 0) for k, c in counts.items()}
        out[str(r)] = {**row, "yield": round(row["kept"] / row["questions"], 4) if row["questions"] else None}
    return out


def _backends(notes: pa.Table, questions: pa.Table, verdicts: pa.Table) -> dict:
    answers = pa.Table.from_struct_array(pc.list_flatten(verdicts["answers"]))
    return {
        "asr": sorted(pc.unique(notes["asr_model"].filter(_truthy(notes["asr_model"]))).to_pylist()),
        "captioner": sorted({f"{n['caption_backend']}:{n['caption_model'] or '-'}"
                             for n in _distinct(notes, ["caption_backend", "caption_model"]) if n["caption_backend"]}),
        "question_writer": sorted({f"{q['writer_backend']}:{q['writer_model'] or '-'}@{q['prompt_version']}" for q
                                   in _distinct(questions, ["writer_backend", "writer_model", "prompt_version"])}),
        "answerers": sorted({f"{a['answerer']}={a['backend']}:{a['model'] or '-'}"
                             for a in _distinct(answers, ["answerer", "backend", "model"])}),
        "judge": sorted({f"{v['judge_backend']}:{v['judge_model'] or '-'}@{v['judge_prompt_version']}"
                         for v in _distinct(verdicts, ["judge_backend", "judge_model", "judge_prompt_version"])}),
    }


def keys_per_node(kept: pa.Table) -> dict:
    """Per node: how often each option position and each option text is the key (a node whose key is
    nearly always the same text teaches a prior, not listening), and the share of items whose key rests
    on a single source (`verifiers.evidence`)."""
    kept = pa.table({"node_path": kept["node_path"], "answer": kept["answer"], "answer_text": kept["answer_text"],
                     "single_source": pc.fill_null(kept["single_source"], False)})
    positions = {(r["node_path"], r["answer"]): r["count_all"]
                 for r in kept.group_by(["node_path", "answer"]).aggregate([([], "count_all")]).to_pylist()}
    texts: dict[str, dict[str, int]] = {}  # most frequent first, ties in order of first appearance
    by_text = kept.group_by(["node_path", "answer_text"], use_threads=False).aggregate([([], "count_all")])
    for r in by_text.sort_by([("count_all", "descending")]).to_pylist():
        texts.setdefault(r["node_path"], {})[r["answer_text"]] = r["count_all"]
    out = {}
    nodes = kept.group_by("node_path").aggregate([([], "count_all"), ("single_source", "sum")])
    for row in sorted(nodes.to_pylist(), key=lambda r: r["node_path"]):
        node, n, single = row["node_path"], row["count_all"], row["single_source_sum"]
        top, top_n = next(iter(texts[node].items()))
        out[node] = {"kept": n, "positions": {x: positions.get((node, x), 0) for x in "ABCD"},
                     "texts": texts[node], "top_text": top, "top_share": round(top_n / n, 4),
                     "single_source": single, "single_source_share": round(single / n, 4)}
    return out


def text_answerable_rates(questions: pa.Table | list[dict], verdicts: pa.Table | list[dict], min_hits: int) -> dict:
    """Share of verified items the blind answerer (`verifiers.blind`) answers from the text alone, overall,
    per node and per writer. The key is the template's answer key, else the judge's winning letter."""
    from verifiers.blind import is_text_answerable

    questions, verdicts = _table(questions), _table(verdicts)
    verdicts = verdicts.filter(_truthy(verdicts["blind"]))
    winner = verdicts["winner"]  # the winning letter is MODEL_B's only when it alone won (policy.winner_index)
    judged = pc.if_else(pc.equal(winner, "MODEL_B"), _letter(verdicts["answers"], 1), _letter(verdicts["answers"], 0))
    checked = pa.table({"question_id": verdicts["question_id"], "blind": verdicts["blind"],
                        "judged": pc.if_else(pc.equal(winner, "NONE"), pa.scalar(None, pa.string()), judged)})
    checked = checked.join(questions.select(["question_id", "answer_key", "node_path", "writer_backend",
                                             "writer_model"]), "question_id", join_type="inner")
    keys = pc.if_else(_truthy(checked["answer_key"]), checked["answer_key"], checked["judged"])
    flags = [is_text_answerable(blind, "ABCD".index(key) if key else None, min_hits)
             for blind, key in zip(checked["blind"].to_pylist(), keys.to_pylist())]
    model = checked["writer_model"]
    checked = pa.table({
        "node": checked["node_path"], "flag": pa.array(flags, pa.bool_()),
        "writer": pc.binary_join_element_wise(checked["writer_backend"], pc.if_else(_truthy(model), model, "-"), ":")})
    checked = checked.filter(pc.is_valid(checked["flag"]))

    def rate(hits: int, n: int) -> dict:
        return {"text_answerable": hits, "checked": n, "rate": round(hits / n, 4) if n else None}

    def per(column: str) -> dict:
        groups = checked.group_by(column).aggregate([("flag", "sum"), ("flag", "count")]).to_pylist()
        return {g[column]: rate(g["flag_sum"], g["flag_count"]) for g in sorted(groups, key=lambda g: g[column])}

    return {"min_hits": min_hits, **rate(pc.sum(checked["flag"]).as_py() or 0, checked.num_rows),
            "per_node": per("node"), "per_writer": per("writer")}


def _table(rows: pa.Table | list[dict]) -> pa.Table:
    """Rows as given by a caller without tables (a test's few dicts) become a table."""
    return rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)


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
