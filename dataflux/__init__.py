"""DataFlux: raw audio in, verified instruction data out. The library runs without an orchestrator."""

__version__ = "0.1.0"

import storage  # noqa: E402, F401  (before pyarrow loads: it sets the allocator up, see storage/__init__.py)
