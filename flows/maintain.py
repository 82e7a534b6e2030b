"""`dataflux-maintain`: table upkeep for a run folder (compact, vacuum past the retention window,
checkpoint) and the LLM request cache pruned of prompt versions no longer in use. `dataflux maintain
RUN_DIR` runs `maintain_run` by hand; the flow runs the same on a schedule and shows a table artifact."""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger

CACHE_FILE = "llm_cache.sqlite"


def prompt_versions_in_use() -> set[str]:
    """The prompt-template versions the code sends today: cache rows of any other can never be hit."""
    from dataflux.annotate.caption import OPENAI_PROMPT_VERSION
    from dataflux.generate.prompts import PROMPT_VERSION
    from verifiers.answerers import ANSWERER_PROMPT_VERSION
    from verifiers.judges import JUDGE_PROMPT_VERSION

    return {OPENAI_PROMPT_VERSION, PROMPT_VERSION, ANSWERER_PROMPT_VERSION, JUDGE_PROMPT_VERSION}


def maintain_run(run_dir: str, retention_hours: float = 24 * 7, compact: bool = True,
                 prune_cache: bool = True, dry_run: bool = False) -> dict:
    """Upkeep of every table, then the LLM cache; returns what was done and freed."""
    from dataflux.llm.cache import RequestCache
    from storage.maintenance import maintain_tables
    from storage.run_folder import RunFolder

    run = RunFolder(run_dir)
    tables = maintain_tables(run, timedelta(hours=retention_hours), compact, dry_run)
    cache = {"rows_deleted": {}, "bytes_freed": 0}
    path = run.local_path / CACHE_FILE
    if prune_cache and path.exists():
        store = RequestCache(path)
        try:
            keep = prompt_versions_in_use()
            if dry_run:
                cache["rows_deleted"] = {k: n for k, n in store.templates().items() if k is not None and k not in keep}
            else:
                cache = store.prune(keep)
            cache["kept_versions"] = sorted(keep)
        finally:
            store.close()
    freed = sum(t["bytes_freed"] for t in tables) + cache["bytes_freed"]
    return {"run_dir": run.uri, "retention_hours": retention_hours, "dry_run": dry_run, "tables": tables,
            "llm_cache": cache, "bytes_freed": freed}


def describe(result: dict) -> list[str]:
    """One line per table and one for the cache: what `dataflux maintain` prints."""
    lines = []
    for t in result["tables"]:
        lines.append(f"{t['table']}: live files {t['live_files_before']} -> {t['live_files_after']}"
                     f"{' (compacted)' if t['compacted'] else ''}, files on disk {t['files_on_disk_before']} -> "
                     f"{t['files_on_disk_after']}, {t['files_deleted']} deleted ({_size(t['bytes_freed'])}), "
                     f"versions {t['oldest_readable_version']}..{t['version_after']} readable"
                     f"{', checkpoint written' if t['checkpoint'] else ''}")
    cache = result["llm_cache"]
    dropped = ", ".join(f"{k}={n}" for k, n in sorted(cache["rows_deleted"].items())) or "none"
    lines.append(f"llm cache: answers of retired prompt versions deleted: {dropped} ({_size(cache['bytes_freed'])})")
    lines.append(f"{'would free' if result['dry_run'] else 'freed'} {_size(result['bytes_freed'])} in total")
    return lines


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@flow(name="dataflux-maintain", log_prints=True, result_serializer="json")
def maintain(run_dir: str, retention_hours: float = 24 * 7, compact: bool = True, prune_cache: bool = True) -> dict:
    """Compact, vacuum and checkpoint every table of `run_dir`, prune the LLM cache; a table artifact
    lists what each table freed."""
    from prefect.artifacts import create_table_artifact

    result = maintain_run(run_dir, retention_hours, compact, prune_cache)
    for line in describe(result):
        get_run_logger().info(line)
    create_table_artifact([{k: t[k] for k in ("table", "version_before", "version_after", "live_files_before",
                                              "live_files_after", "files_deleted", "bytes_freed",
                                              "oldest_readable_version")} for t in result["tables"]],
                          key="dataflux-maintain", description="table upkeep: files compacted and vacuumed")
    return result
