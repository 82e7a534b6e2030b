"""Which taxonomy nodes each clip is asked about: grounded ones, capped per clip, balanced across nodes."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataflux.taxonomy import Leaf


def grounding_columns(leaves: list[Leaf]) -> list[str]:
    """The annotation columns that decide which leaves a clip grounds."""
    return sorted({c for leaf in leaves for c in leaf.grounded_by})


def assign_nodes(annotations: pa.Table, leaves: list[Leaf], max_per_clip: int, grounded_only: bool) -> pa.Table:
    """(clip_id, node_path) pairs. Clips in clip_id order take the least-used eligible nodes first (ties
    broken by a hash of clip and node), so node counts stay balanced and the assignment is the same on
    every run. `annotations` holds `clip_id` and the `grounding_columns`; a leaf is grounded by a clip
    with a value in each of its columns (a column the table lacks grounds nothing)."""
    annotations = annotations.sort_by("clip_id")
    eligible = np.zeros((annotations.num_rows, len(leaves)), dtype=bool)
    for j, leaf in enumerate(leaves):
        if leaf.grounded_by:
            eligible[:, j] = all(c in annotations.column_names for c in leaf.grounded_by) and np.logical_and.reduce(
                [pc.is_valid(annotations[c]).to_numpy(zero_copy_only=False) for c in leaf.grounded_by
                 if c in annotations.column_names])
        else:
            eligible[:, j] = not grounded_only
    used: Counter = Counter()
    clips, nodes = [], []
    for clip, row in zip(annotations["clip_id"].to_pylist(), eligible):
        chosen = sorted((leaves[j] for j in np.flatnonzero(row)), key=lambda leaf: (used[leaf.name], hashlib.sha256(
            f"{clip}|{leaf.name}".encode()).hexdigest()))[:max_per_clip]
        for leaf in chosen:
            used[leaf.name] += 1
            clips.append(clip)
            nodes.append(leaf.node_path)
    return pa.table({"clip_id": pa.array(clips, pa.string()), "node_path": pa.array(nodes, pa.string())})
