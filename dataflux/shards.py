"""Shards: a stable split of a stage's work by clip, so an orchestrator can run a stage as a few coarse
tasks (each one retried and cached on its own) instead of one task per clip."""

from __future__ import annotations

import hashlib
import math

Shard = tuple[int, int]  # (index, count)


def shard_of(clip_id: str, count: int) -> int:
    """The index of the shard, of `count`, that a clip belongs to."""
    return int(hashlib.sha256(clip_id.encode()).hexdigest()[:8], 16) % count


def in_shard(clip_id: str, shard: Shard | None) -> bool:
    return shard is None or shard_of(clip_id, shard[1]) == shard[0]


def shard_count(num_clips: int, shard_size: int, max_shards: int) -> int:
    """ceil(clips / shard_size), at least 1 and at most `max_shards`: task runs stay bounded as input grows."""
    return max(1, min(max_shards, math.ceil(num_clips / max(1, shard_size))))
