"""DataFlux: raw audio in, verified instruction data out. The library runs without an orchestrator."""

__version__ = "0.1.0"
