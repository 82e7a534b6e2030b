"""Table schemas, declared once. Every stage table carries the lineage columns."""

from __future__ import annotations

import pyarrow as pa

# Who produced a row: stage name and version, and the backend/model behind it (if any).
LINEAGE = [
    pa.field("producer", pa.string(), nullable=False),
    pa.field("backend", pa.string()),
    pa.field("model_id", pa.string()),
]

CLIPS = pa.schema([
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("source_uri", pa.string(), nullable=False),
    pa.field("segment_index", pa.int32(), nullable=False),
    pa.field("num_segments", pa.int32(), nullable=False),
    pa.field("start_s", pa.float64(), nullable=False),
    pa.field("duration_s", pa.float64(), nullable=False),
    pa.field("sample_rate", pa.int32(), nullable=False),
    pa.field("num_samples", pa.int64(), nullable=False),
    pa.field("orig_sample_rate", pa.int32(), nullable=False),
    pa.field("orig_channels", pa.int32(), nullable=False),
    pa.field("orig_format", pa.string(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("metadata", pa.string()),  # JSON object from the manifest's extra columns
    pa.field("audio", pa.binary(), nullable=False),  # FLAC, 16 kHz mono PCM_16
    *LINEAGE,
])

REJECTS = pa.schema([
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("reason_code", pa.string(), nullable=False),
    pa.field("detail", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("producer", pa.string(), nullable=False),
])

# Table name -> (schema, merge key). Later stages register their tables here.
TABLES: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "clips": (CLIPS, ("clip_id",)),
    "rejects": (REJECTS, ("stage", "item_id")),
}


def conform(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly `schema`'s columns; a missing nullable column becomes null."""
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
    for f in schema:
        if not f.nullable and any(v is None for v in columns[f.name]):
            raise ValueError(f"column {f.name!r} is required, and a row has no value for it")
    return pa.Table.from_pydict(columns, schema=schema)


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`conform` for a table: exactly `schema`'s columns in its order, a missing nullable column null."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table[f.name].cast(f.type))
        elif f.nullable:
            columns.append(pa.nulls(table.num_rows, f.type))
        else:
            raise ValueError(f"column {f.name!r} is required, and the table has no such column")
    return pa.Table.from_arrays(columns, schema=schema)


def _unit(name: str, type_: pa.DataType, unit: str = "", nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"unit": unit} if unit else None)


SEGMENT = pa.struct([("start_s", pa.float64()), ("end_s", pa.float64())])
WORD = pa.struct([("word", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()),
                  ("prob", pa.float64())])
F, S, B, I = pa.float64(), pa.string(), pa.bool_(), pa.int32()
TURN = pa.struct([("start_s", F), ("end_s", F), ("speaker", I)])

ANNOTATIONS = pa.schema([
    pa.field("clip_id", S, nullable=False),
    _unit("duration_s", F, "s"), _unit("rms_dbfs", F, "dBFS"), _unit("peak_dbfs", F, "dBFS"),
    _unit("loudness_lufs", F, "LUFS"), _unit("clipping_ratio", F, "fraction of samples"),
    _unit("spectral_flatness", F, "0 tonal .. 1 white noise"),
    _unit("speech_ratio", F, "fraction of duration"), _unit("speech_segments", pa.list_(SEGMENT), "s"),
    _unit("is_speech", B), _unit("snr_db", F, "dB"),
    _unit("dnsmos_sig", F, "MOS 1-5"), _unit("dnsmos_bak", F, "MOS 1-5"), _unit("dnsmos_ovrl", F, "MOS 1-5"),
    _unit("f0_median_hz", F, "Hz"), _unit("f0_iqr_hz", F, "Hz"), _unit("f0_p10_hz", F, "Hz"),
    _unit("f0_p90_hz", F, "Hz"), _unit("voiced_ratio", F, "fraction of frames"),
    _unit("transcript", S), _unit("language", S, "ISO 639-1"), _unit("language_prob", F, "probability"),
    _unit("words", pa.list_(WORD), "s"), _unit("no_speech_prob", F, "probability"),
    _unit("avg_logprob", F, "nats/token"), _unit("hallucination_flag", B), _unit("hallucination_reason", S),
    _unit("asr_model", S),
    _unit("speech_rate_wps", F, "words/s"), _unit("speech_rate_sps", F, "syllables/s"),
    _unit("num_words", I, "words"),
    _unit("gender", S, "male|female"), _unit("gender_confidence", F, "0-1"),
    _unit("gender_source", S, "voice2gender|f0_rule"),
    _unit("num_speakers", I, "speakers"), _unit("num_turns", I, "turns"), _unit("speaker_turns", pa.list_(TURN), "s"),
    _unit("onset_count", I, "events"), _unit("tempo_bpm", F, "BPM"),
    _unit("harmonic_ratio", F, "0 percussive .. 1 tonal"), _unit("tone_hz", F, "Hz"), _unit("rt60_s", F, "s"),
    _unit("bandwidth_hz", F, "Hz"), _unit("dynamic_range_db", F, "dB"),
    _unit("sound_class", S, "speech|music|tone|noise|silence"),
    *[_unit(f"tag_{t}", S) for t in ("content", "pitch", "rate", "loudness", "quality", "clipping", "duration",
                                     "speakers", "timbre", "sound", "tempo", "texture", "tone", "events", "reverb",
                                     "bandwidth", "dynamics")],
    _unit("caption", S), _unit("caption_backend", S), _unit("caption_model", S), _unit("caption_prompt_version", S),
    _unit("errors", S, "JSON: analyzer -> reason"), _unit("skipped", S, "JSON: analyzer -> reason"),
    *LINEAGE,
])
TABLES["annotations"] = (ANNOTATIONS, ("clip_id",))

QUESTIONS = pa.schema([
    pa.field("question_id", S, nullable=False),
    pa.field("clip_id", S, nullable=False),
    pa.field("node_path", S, nullable=False),
    pa.field("question", S, nullable=False),
    pa.field("options", pa.list_(S), nullable=False),
    pa.field("writer_backend", S, nullable=False),
    pa.field("writer_model", S),
    pa.field("prompt_version", S, nullable=False),
    pa.field("raw_output", S),
    pa.field("round", I, nullable=False),
    pa.field("answer_key", S),  # template items only; answerers never see it
    *LINEAGE,
])
TABLES["questions"] = (QUESTIONS, ("question_id",))

ANSWER = pa.struct([("answerer", S), ("backend", S), ("model", S), ("letter", S), ("reasoning", S), ("raw", S),
                    ("parse", S), ("trace", S)])  # trace: the model's thinking, apart from its reasoning
VERDICTS = pa.schema([
    pa.field("question_id", S, nullable=False),
    pa.field("clip_id", S, nullable=False),
    pa.field("node_path", S, nullable=False),
    pa.field("round", I, nullable=False),
    pa.field("answers", pa.list_(ANSWER), nullable=False),  # MODEL_A, MODEL_B, then any further answerers
    pa.field("consensus", B, nullable=False),
    pa.field("consistency_with_caption", S, nullable=False),  # STRONG_MATCH | WEAK_MATCH | CONFLICT
    pa.field("winner", S, nullable=False),  # MODEL_A | MODEL_B | TIE | NONE
    pa.field("judge_reasoning", S),
    pa.field("final_action", S, nullable=False),  # KEEP_USING_WINNER | DISCARD
    pa.field("judge_backend", S, nullable=False),
    pa.field("judge_model", S),
    pa.field("judge_prompt_version", S, nullable=False),
    pa.field("judge_raw", S),
    pa.field("blind", S),  # JSON: the text-only answerer's picks over K option orders (verifiers.blind)
    *LINEAGE,
])
TABLES["verdicts"] = (VERDICTS, ("question_id",))

# A kept item: the training example. `corpus` is the published, self-contained copy (audio included),
# one table version per publish.
_ITEM = [
    pa.field("question_id", S, nullable=False),
    pa.field("clip_id", S, nullable=False),
    pa.field("node_path", S, nullable=False),
    pa.field("round", I, nullable=False),
    pa.field("question", S, nullable=False),
    pa.field("options", pa.list_(S), nullable=False),  # after the answer-position balance
    pa.field("answer", S, nullable=False),  # the right letter
    pa.field("answer_text", S, nullable=False),
    pa.field("reasoning", S, nullable=False),  # the winner's reasoning, without its final answer line
    pa.field("trace", S),  # the winner's thinking (a reasoning model's <think> trace), when it has one
    pa.field("target", S, nullable=False),  # reasoning + "Answer: X": what the model learns to say
    pa.field("winner", S, nullable=False),
    pa.field("consistency_with_caption", S, nullable=False),
    pa.field("hard", B),  # a Eureka-Audio answerer got it wrong
    pa.field("text_answerable", B),  # the blind answerer picks the key without the audio (None: not checked)
    pa.field("weight", F),  # training weight: 1, or the policy's down-weight for a text-answerable item
    pa.field("single_source", B),  # the key rests on one source (verifiers.evidence); None: not checked
    # JSON: writer, answerers, judge (backends, models, prompt versions), config hash
    pa.field("lineage", S, nullable=False),
]
KEPT = pa.schema([*_ITEM, *LINEAGE])
TABLES["kept"] = (KEPT, ("question_id",))
CORPUS = pa.schema([*_ITEM, pa.field("duration_s", F), pa.field("audio", pa.binary(), nullable=False),
                    pa.field("published_version", pa.int64(), nullable=False), *LINEAGE])
TABLES["corpus"] = (CORPUS, ("question_id",))

# One row per published corpus version: its summary's figures (dataflux/history.py), so quality can be
# followed across versions and compared (`dataflux tables diff`).
H = pa.int64()
CORPUS_HISTORY = pa.schema([
    pa.field("corpus_version", H, nullable=False),
    pa.field("recorded_at", S, nullable=False),
    pa.field("config_hash", S),
    pa.field("corpus_rows", H), pa.field("new_items", H),
    *[pa.field(n, H) for n in ("inputs", "clips", "annotated", "questions", "verified", "kept")],
    *[pa.field(f"yield_{a}_{b}", F) for a, b in (("inputs", "clips"), ("clips", "annotated"),
                                                  ("annotated", "questions"), ("questions", "verified"),
                                                  ("verified", "kept"))],
    pa.field("kappa", F), pa.field("both_answered", H),
    pa.field("letters_chi2_p", F), pa.field("letters_balanced", B), pa.field("letter_counts", S),  # JSON
    pa.field("nodes_covered", H), pa.field("nodes_total", H), pa.field("kept_per_node", S),  # JSON
    pa.field("summary", S, nullable=False),  # JSON: the whole summary (report.summarize), measures aside
])
TABLES["corpus_history"] = (CORPUS_HISTORY, ("corpus_version",))
