"""Versioned tables (Parquet + Delta Lake log), the run folder, rejects and exports."""

from storage.run_folder import RunFolder
from storage.tables import Table

__all__ = ["RunFolder", "Table"]
