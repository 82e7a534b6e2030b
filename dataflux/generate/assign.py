"""Which taxonomy nodes each clip is asked about: grounded ones, capped per clip, balanced across nodes."""

from __future__ import annotations

import hashlib
from collections import Counter

from dataflux.taxonomy import Leaf


def grounded(leaf: Leaf, annotation: dict) -> bool:
    return bool(leaf.grounded_by) and all(annotation.get(col) is not None for col in leaf.grounded_by)


def assign_nodes(annotations: list[dict], leaves: list[Leaf], max_per_clip: int,
                 grounded_only: bool) -> list[tuple[dict, Leaf]]:
    """Clips in clip_id order take the least-used eligible nodes first (ties broken by a hash of clip and
    node), so node counts stay balanced and the assignment is the same on every run."""
    used: Counter = Counter()
    pairs = []
    for a in sorted(annotations, key=lambda a: a["clip_id"]):
        eligible = [leaf for leaf in leaves if grounded(leaf, a) or (not grounded_only and not leaf.grounded_by)]
        eligible.sort(key=lambda leaf: (used[leaf.name], hashlib.sha256(
            f"{a['clip_id']}|{leaf.name}".encode()).hexdigest()))
        for leaf in eligible[:max_per_clip]:
            used[leaf.name] += 1
            pairs.append((a, leaf))
    return pairs
