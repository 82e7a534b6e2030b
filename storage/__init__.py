"""Versioned tables (Parquet + Delta Lake log), the run folder, rejects and exports."""

import os

# pyarrow's allocator (mimalloc) keeps the pages it frees for reuse: a process that streams big tables a
# chunk at a time then holds hundreds of MB it no longer uses (the flow process of a 100k-clip run did).
# This process returns them at once. mimalloc reads the option as pyarrow loads; it is taken out of the
# environment again, so that the processes started from here (Ray workers, whose allocation-heavy work
# ran 12% slower with it) keep mimalloc's default. A value the user set is left as it is.
if "MIMALLOC_PURGE_DELAY" not in os.environ:
    os.environ["MIMALLOC_PURGE_DELAY"] = "0"
    import pyarrow  # noqa: E402, F401

    del os.environ["MIMALLOC_PURGE_DELAY"]

from storage.run_folder import RunFolder  # noqa: E402
from storage.tables import Table  # noqa: E402

__all__ = ["RunFolder", "Table"]
