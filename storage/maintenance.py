"""Table upkeep: compact small files, vacuum files no recent version needs, write checkpoints.

Retention means: every version committed within the last `retention` stays readable (time travel),
and so does the latest. A Parquet file is deleted only when no such version references it and it was
written before the window began (so the files of a commit still in flight are never touched). Versions
older than the window become unreadable; `Table.read(version=...)` then says so (`VersionVacuumed`).

`corpus` is not compacted: its versions are publications (`published_version`, `published/corpus-vN`,
`dataflux.corpus.published`), and a compaction would add a version that publishes nothing. It only
ever gains files, so vacuuming never makes one of its versions unreadable.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from deltalake import DeltaTable

from storage.run_folder import RunFolder
from storage.tables import Table

DEFAULT_RETENTION = timedelta(days=7)
NOT_COMPACTED = ("corpus",)


@dataclass
class TableUpkeep:
    table: str
    version_before: int
    version_after: int
    live_files_before: int
    live_files_after: int
    files_on_disk_before: int
    files_on_disk_after: int
    files_deleted: int = 0
    bytes_freed: int = 0
    compacted: bool = False
    checkpoint: bool = False
    oldest_readable_version: int | None = None
    notes: list[str] = field(default_factory=list)


def data_files(folder: Path) -> list[Path]:
    """The Parquet files in a table folder (the log aside)."""
    return [p for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts]


def versions_in_window(dt: DeltaTable, cutoff_ms: int) -> list[int]:
    """Versions committed at or after `cutoff_ms` (epoch milliseconds), and the latest in any case."""
    latest = dt.version()
    recent = {h["version"] for h in dt.history() if h.get("timestamp", 0) >= cutoff_ms}
    return sorted(recent | {latest})


def referenced_files(uri: str, versions: list[int], storage_options=None) -> set[str]:
    keep: set[str] = set()
    dt = DeltaTable(uri, version=versions[0], storage_options=storage_options)
    for v in versions:
        dt.load_as_version(v)
        keep.update(str(Path(f.removeprefix("file://")).resolve()) for f in dt.file_uris())
    return keep


def maintain_table(table: Table, name: str, retention: timedelta = DEFAULT_RETENTION, compact: bool = True,
                   dry_run: bool = False, now: float | None = None) -> TableUpkeep:
    folder = Path(table.uri.removeprefix("file://"))
    dt = DeltaTable(table.uri, storage_options=table.storage_options)
    on_disk = data_files(folder)
    report = TableUpkeep(name, dt.version(), dt.version(), len(dt.file_uris()), len(dt.file_uris()),
                         len(on_disk), len(on_disk))
    if compact and name not in NOT_COMPACTED and len(dt.file_uris()) > 1 and not dry_run:
        metrics = dt.optimize.compact(commit_properties=_props())
        if metrics.get("numFilesRemoved"):
            report.compacted = True
            dt = DeltaTable(table.uri, storage_options=table.storage_options)
    now = time.time() if now is None else now
    cutoff = now - retention.total_seconds()
    window = versions_in_window(dt, int(cutoff * 1000))
    report.oldest_readable_version = window[0]
    keep = referenced_files(table.uri, window, table.storage_options)
    for path in data_files(folder):
        if str(path.resolve()) in keep:
            continue
        stat = path.stat()
        if stat.st_mtime >= cutoff:  # written inside the window: a version in it, or a commit in flight
            continue
        report.files_deleted += 1
        report.bytes_freed += stat.st_size
        if not dry_run:
            path.unlink()
    if not dry_run:
        dt = DeltaTable(table.uri, storage_options=table.storage_options)
        dt.create_checkpoint()
        dt.cleanup_metadata()  # log entries past the table's log retention (30 days), before the checkpoint
        report.checkpoint = True
    report.version_after = dt.version()
    report.live_files_after = len(dt.file_uris())
    report.files_on_disk_after = len(data_files(folder))
    return report


def maintain_tables(run: RunFolder, retention: timedelta = DEFAULT_RETENTION, compact: bool = True,
                    dry_run: bool = False) -> list[dict]:
    """Upkeep of every table of a local run folder, holding the run folder's lock (no run writes
    meanwhile: a compaction would conflict with its commits)."""
    if run.local_path is None:
        raise ValueError(f"maintain works on local run folders; {run.uri} is an object-store URL (use the "
                         "store's lifecycle rules and deltalake's own vacuum there)")
    now = time.time()
    with run.lock({"command": "maintain"}):
        return [asdict(maintain_table(run.table(name), name, retention, compact, dry_run, now))
                for name in run.tables()]


def _props():
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata={"dataflux.stage": "maintain"})
