"""The pipeline's run configuration: typed sections (each declared beside the stage that reads it),
read from YAML with `section.key=value` overrides by the one loader in `dataflux.settings`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from dataflux.settings import ConfigError, Overrides, Section, load
from dataflux.stages.annotate import AnnotateConfig
from dataflux.stages.filter import FilterConfig
from dataflux.stages.generate import AnyGenerateConfig, GenerateConfig
from dataflux.stages.ingest import IngestConfig
from dataflux.stages.verify import VerifyConfig

__all__ = ["ConfigError", "RunConfig", "load_config", "schema"]


class RunConfig(Section):
    source: str | None = None  # a directory, a manifest or an fsspec URL; relative to the config file
    out: str | None = None  # the run folder; relative to where dataflux runs
    runner: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    ray_auth_token_env: str | None = None  # variable holding the cluster's auth token (default: Ray's own sources)
    ingest: IngestConfig = IngestConfig()
    annotate: AnnotateConfig = AnnotateConfig()
    generate: AnyGenerateConfig = GenerateConfig()
    verify: VerifyConfig = VerifyConfig()
    filter: FilterConfig = FilterConfig()

    def as_dict(self) -> dict:
        return self.model_dump(mode="json")

    def hash(self) -> str:
        """What the data depends on: everything but where the run folder is."""
        settings = self.model_dump(mode="json", exclude={"out"})
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def load_config(path: str | Path | None, overrides: Overrides = None) -> RunConfig:
    """Read a YAML config (none: the defaults) with `section.key=value` overrides (a list of strings,
    values parsed as YAML, or a dict of dotted keys). `source` in the file is relative to the file; an
    overriding `source`, like `out`, is relative to the current directory."""
    return load(RunConfig, path, overrides, prepare=_source_beside_file)


def schema() -> dict:
    """The JSON schema of a pipeline config file (docs/config.schema.json)."""
    return RunConfig.model_json_schema()


def _source_beside_file(data: dict, path: Path) -> dict:
    source = data.get("source")
    if isinstance(source, str) and "://" not in source and not Path(source).is_absolute():
        data = {**data, "source": str((path.parent / source).resolve())}
    return data
