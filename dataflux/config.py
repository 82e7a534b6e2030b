"""Run configuration: a YAML file mapped onto dataclasses; unknown keys are errors, not surprises."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dataflux.annotate.asr import AsrConfig
from dataflux.annotate.caption import CaptionConfig
from dataflux.annotate.tags import TagThresholds
from dataflux.audio import Limits
from dataflux.stages.annotate import AnnotateConfig
from dataflux.stages.filter import FilterConfig
from dataflux.stages.generate import GenerateConfig
from dataflux.stages.ingest import IngestConfig
from dataflux.stages.verify import VerifyConfig
from verifiers.policy import Policy


@dataclass(frozen=True)
class RunConfig:
    source: str | None = None
    out: str | None = None
    runner: str = "local"
    ray_address: str | None = None
    ingest: IngestConfig = field(default_factory=IngestConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """What the data depends on: everything but where the run folder is."""
        settings = {k: v for k, v in self.as_dict().items() if k != "out"}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class ConfigError(ValueError):
    pass


def load_config(path: str | Path | None) -> RunConfig:
    """Read a YAML config; `source` is resolved relative to the file, `out` relative to the CWD."""
    if path is None:
        return RunConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    config = _build(RunConfig, data, str(path))
    if config.source and "://" not in config.source and not Path(config.source).is_absolute():
        config = dataclasses.replace(config, source=str((path.parent / config.source).resolve()))
    return config


_NESTED = {"ingest": IngestConfig, "limits": Limits, "annotate": AnnotateConfig, "asr": AsrConfig,
           "caption": CaptionConfig, "tags": TagThresholds, "generate": GenerateConfig,
           "verify": VerifyConfig, "filter": FilterConfig, "policy": Policy}


def _build(cls, data: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}")
    values = {}
    for key, value in data.items():
        if key in _NESTED:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key} must be a mapping")
            value = _build(_NESTED[key], value, f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)  # thresholds are (low, high) pairs
        values[key] = value
    return cls(**values)
