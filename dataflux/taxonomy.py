"""The paralinguistic taxonomy, loaded from `taxonomy.yaml` (or a user's file)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, str, str, str]  # L0, L1, L2, L3
    grounded_by: tuple[str, ...]
    description: str

    @property
    def node_path(self) -> str:
        return " > ".join(self.path)

    @property
    def name(self) -> str:
        return self.path[-1]


def load_taxonomy(path: str | Path | None = None) -> list[Leaf]:
    text = Path(path).read_text() if path else resources.files("dataflux").joinpath("taxonomy.yaml").read_text()
    data = yaml.safe_load(text)
    leaves = []

    def walk(node: dict, trail: tuple[str, ...]):
        for name, child in node.items():
            here = trail + (name,)
            if len(here) == 4:
                if not isinstance(child, dict) or "description" not in child:
                    raise ValueError(f"taxonomy leaf {' > '.join(here)} needs grounded_by and description")
                leaves.append(Leaf(here, tuple(child.get("grounded_by") or ()), child["description"]))
            elif isinstance(child, dict):
                walk(child, here)
            else:
                raise ValueError(f"taxonomy node {' > '.join(here)} stops above level L3")

    walk(data["nodes"], ())
    return leaves
