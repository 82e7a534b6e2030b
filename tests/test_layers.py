"""The one-way dependencies (README, "Layers"), checked on the source: every import, including those
inside functions, goes to the same layer or a lower one, and the three domain packages do not import
each other (the verifiers' listeners must measure independently of the annotator).

    storage -> core -> model -> annotate | generate | verifiers -> pipeline -> flows, CLI
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("storage", "dataflux", "model", "verifiers", "flows")
LAYERS = ("storage", "core", "model", "domain", "pipeline", "top")
# Modules of the `dataflux` package by layer; anything under dataflux/ not named here is core.
DOMAIN = {"dataflux.annotate": "annotate", "dataflux.generate": "generate", "verifiers": "verifiers"}
PIPELINE = ("dataflux.stages", "dataflux.pipeline", "dataflux.report", "dataflux.config")
TOP = ("flows", "dataflux.cli")


def _under(module: str, prefixes) -> str | None:
    return next((p for p in prefixes if module == p or module.startswith(p + ".")), None)


def layer(module: str) -> tuple[int, str]:
    """(layer index, group): the group tells the domain packages apart."""
    if _under(module, TOP):
        return LAYERS.index("top"), "top"
    if _under(module, PIPELINE):
        return LAYERS.index("pipeline"), "pipeline"
    domain = _under(module, DOMAIN)
    if domain:
        return LAYERS.index("domain"), DOMAIN[domain]
    top = module.split(".")[0]
    if top == "model":
        return LAYERS.index("model"), "model"
    if top == "storage":
        return LAYERS.index("storage"), "storage"
    return LAYERS.index("core"), "core"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a project package in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def violations(root: Path) -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            mine, my_group = layer(module)
            for line, target in imports(path.read_text(), module, path.name == "__init__.py"):
                theirs, their_group = layer(target)
                upward = theirs > mine
                sideways = mine == theirs == LAYERS.index("domain") and my_group != their_group
                if upward or sideways:
                    out.append(f"{path.relative_to(root)}:{line}: {module} ({LAYERS[mine]}/{my_group}) imports "
                               f"{target} ({LAYERS[theirs]}/{their_group})")
    return out


def test_imports_only_go_down_the_layers():
    found = violations(ROOT)
    assert not found, "imports against the layering:\n" + "\n".join(found)


@pytest.mark.parametrize("planted, where", [
    ("storage/tables.py", "from dataflux.pipeline import run_pipeline\n"),  # storage -> pipeline
    ("verifiers/measure.py", "    from dataflux.annotate.asr import count_syllables\n"),  # domain sideways
    ("model/data.py", "import flows.synthesize\n"),  # model -> flows
])
def test_a_planted_reverse_import_fails_the_check(tmp_path, planted, where):
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text())
    before = set(violations(tmp_path))
    file = tmp_path / planted
    file.write_text(file.read_text() + "\n\ndef planted():\n" + (where if where.startswith(" ") else "    " + where))
    new = set(violations(tmp_path)) - before
    assert len(new) == 1 and next(iter(new)).startswith(planted), new
