"""Versioned tables (Parquet + Delta Lake log), the run folder, rejects and exports."""

import os

# pyarrow's allocator (mimalloc) keeps the pages it frees for reuse: a process that streams big tables a
# chunk at a time then holds hundreds of MB it no longer uses (the flow process of a 100k-clip run did).
# Purged at once, they go back to the system. Read when pyarrow loads, so set before it is imported.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

from storage.run_folder import RunFolder  # noqa: E402
from storage.tables import Table  # noqa: E402

__all__ = ["RunFolder", "Table"]
