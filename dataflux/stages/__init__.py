"""DataFlux stages. Each one is a `Stage` (see dataflux/stage.py) plus the driver step that runs it."""
