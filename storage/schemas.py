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
