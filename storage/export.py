"""Export a table version for trainers: Hugging Face Parquet shards, or ms-swift style JSONL.

- `hf`: `data/train-XXXXX-of-YYYYY.parquet` whose schema carries `datasets` features, so
  `datasets.load_dataset("parquet", data_dir=OUT)` yields a decodable `audio` column (16 kHz), and a dataset
  card `README.md` (YAML front matter: configs, features, splits, license, task and size categories), so
  `datasets.load_dataset(OUT)` loads the folder as is and it uploads to a hub unchanged.
- `swift`: `data.jsonl` lines `{"messages": [...], "audios": ["audio/<clip_id>.flac"]}` plus the FLAC
  files; needs a table with the prompt (`question` or `prompt`) and the `target`.
A table without its own `audio` column (every table after `clips`) gets the audio joined by `clip_id`.
"""

from __future__ import annotations

import json
import math
from typing import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from storage.run_folder import RunFolder

AUDIO_SAMPLE_RATE = 16000
FORMATS = ("hf", "swift")
# What a model learns from each table's rows, as Hugging Face task categories.
TASK_CATEGORIES = {"corpus": ["question-answering", "multiple-choice", "audio-classification"],
                   "kept": ["question-answering", "multiple-choice", "audio-classification"],
                   "questions": ["question-answering", "multiple-choice"],
                   "annotations": ["audio-classification", "automatic-speech-recognition"],
                   "clips": ["audio-classification", "automatic-speech-recognition"]}


def export_table(run: RunFolder, table: str, out: str | Path, fmt: str, version: int | None = None,
                 rows_per_shard: int = 1000, license: str = "unknown") -> dict:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    source = run.table(table)
    if not source.exists():
        raise FileNotFoundError(f"table {table!r} does not exist in {run.uri}; it has: {', '.join(run.tables())}")
    latest = source.version()
    if version is not None and not 0 <= version <= latest:  # delta-rs would raise a bare DeltaError
        raise ValueError(f"table {table!r} has versions 0..{latest}, not {version}")
    version = latest if version is None else version
    out = Path(out)
    if fmt == "hf" and "audio" in source.schema.names:  # streamed: the audio is never held whole
        info = export_hf(source.scan(chunk_rows=rows_per_shard, version=version), out,
                         source.num_rows(version), rows_per_shard)
    else:
        data = with_audio(run, source.read(version=version))
        info = export_hf([data], out, data.num_rows, rows_per_shard) if fmt == "hf" else export_swift(data, out)
    info.update(table=table, version=version, run=run.uri, format=fmt)
    if fmt == "hf":
        write_card(out, info, license)
    (out / "export.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    return info


def with_audio(run: RunFolder, data: pa.Table) -> pa.Table:
    if "audio" in data.column_names:
        return data
    if "clip_id" not in data.column_names:
        raise ValueError("the table has neither an audio nor a clip_id column")
    clips = run.table("clips").read(columns=["clip_id", "audio"])
    position = {clip_id: i for i, clip_id in enumerate(clips["clip_id"].to_pylist())}
    wanted = data["clip_id"].to_pylist()
    missing = sorted({c for c in wanted if c not in position})
    if missing:
        raise ValueError(f"{len(missing)} clip_ids are not in the clips table, e.g. {missing[0]}")
    return data.append_column("audio", clips["audio"].take([position[c] for c in wanted]))


def export_hf(chunks: Iterable[pa.Table], out: Path, total_rows: int, rows_per_shard: int = 1000) -> dict:
    """Write `total_rows` rows, arriving as a stream of tables, as `data/train-XXXXX-of-YYYYY.parquet`;
    one shard's rows at most are held."""
    try:
        from datasets import Audio, Features
    except ImportError as e:
        raise ImportError("the hf export needs the `datasets` package: pip install 'dataflux[hf]'") from e
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    shards = max(1, math.ceil(total_rows / rows_per_shard))
    schema, writer, index, in_shard, rows = None, None, 0, 0, 0
    for data in chunks:
        audio = pa.StructArray.from_arrays(
            [data["audio"].combine_chunks(), pa.array([f"{c}.flac" for c in data["clip_id"].to_pylist()])],
            names=["bytes", "path"])
        data = data.set_column(data.column_names.index("audio"), "audio", audio)
        if schema is None:
            features = Features.from_arrow_schema(data.schema)
            features["audio"] = Audio(sampling_rate=AUDIO_SAMPLE_RATE)
            schema = features.arrow_schema
        data = data.cast(schema)
        while data.num_rows:
            if writer is None:
                writer = pq.ParquetWriter(folder / f"train-{index:05d}-of-{shards:05d}.parquet", schema)
            part = data.slice(0, rows_per_shard - in_shard)
            writer.write_table(part)
            in_shard += part.num_rows
            rows += part.num_rows
            data = data.slice(part.num_rows)
            if in_shard == rows_per_shard:
                writer.close()
                writer, index, in_shard = None, index + 1, 0
    if writer is not None:
        writer.close()
    if rows != total_rows:
        raise ValueError(f"the export expected {total_rows} rows and got {rows}")
    return {"rows": rows, "shards": shards}


def size_category(rows: int) -> str:
    """The Hugging Face size category of `rows` examples (n<1K, 1K<n<10K, ... n>1T)."""
    names = ["1K", "10K", "100K", "1M", "10M", "100M", "1B", "10B", "100B", "1T"]
    if rows < 1000:
        return "n<1K"
    for low, high in zip(names, names[1:]):
        if rows < 10 ** (3 + names.index(high)):
            return f"{low}<n<{high}"
    return "n>1T"


def write_card(out: Path, info: dict, license: str = "unknown") -> Path:
    """`README.md` beside the shards: YAML front matter as the Hugging Face hub and `datasets` read it
    (the features in `datasets`' own YAML form, as `push_to_hub` writes them), then a short description."""
    from datasets import Features

    shards = sorted((out / "data").glob("train-*.parquet"))
    features = Features.from_arrow_schema(pq.read_schema(shards[0])) if shards else Features()
    num_bytes = sum(m.row_group(i).total_byte_size for m in (pq.read_metadata(f) for f in shards)
                    for i in range(m.num_row_groups))  # uncompressed, as `datasets` counts a split's size
    meta = {
        "license": license,
        "task_categories": TASK_CATEGORIES.get(info["table"], ["audio-classification"]),
        "size_categories": [size_category(info["rows"])],
        "pretty_name": f"DataFlux {info['table']} v{info['version']}",
        "tags": ["audio", "dataflux"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
        "dataset_info": {"features": features._to_yaml_list(),
                         "splits": [{"name": "train", "num_bytes": num_bytes, "num_examples": info["rows"]}],
                         "download_size": sum(f.stat().st_size for f in shards), "dataset_size": num_bytes},
    }
    columns = "\n".join(f"- `{name}`: {feature}" for name, feature in features.items())
    body = (f"# DataFlux {info['table']}, version {info['version']}\n\n"
            f"{info['rows']} rows of table `{info['table']}` version {info['version']} of run folder "
            f"`{info['run']}`, in {info['shards']} Parquet shard(s) under `data/`; `audio` is 16 kHz mono FLAC.\n\n"
            f"```python\nimport datasets\nds = datasets.load_dataset(\"path/to/this/folder\", split=\"train\")\n```\n\n"
            f"## Columns\n\n{columns}\n\n## License\n\n`{license}`: the license of the source audio decides "
            "what may be done with this data; set it with `dataflux export --license`.\n")
    path = out / "README.md"
    path.write_text("---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body)
    return path


def export_swift(data: pa.Table, out: Path) -> dict:
    prompt_column = next((c for c in ("question", "prompt") if c in data.column_names), None)
    if prompt_column is None or "target" not in data.column_names:
        raise ValueError("the swift format needs a table with a `question` (or `prompt`) and a `target` "
                         f"column, such as `corpus`; this one has {', '.join(data.column_names)}")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = 0
    with open(out / "data.jsonl", "w") as f:
        for row in data.to_pylist():
            audio_path = f"audio/{row['clip_id']}.flac"
            (out / audio_path).write_bytes(row["audio"])
            f.write(json.dumps({"messages": swift_messages(row, prompt_column), "audios": [audio_path]},
                               ensure_ascii=False) + "\n")
            rows += 1
    return {"rows": rows}


def swift_messages(row: dict, prompt_column: str) -> list[dict]:
    prompt = row[prompt_column]
    options = row.get("options")
    if options:
        prompt += "\n" + "\n".join(f"{chr(ord('A') + i)}. {text}" for i, text in enumerate(options))
    messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    return messages + [{"role": "user", "content": "<audio>" + prompt},
                       {"role": "assistant", "content": row["target"]}]
