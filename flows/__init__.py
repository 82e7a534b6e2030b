"""Prefect flows and deployments that wrap the DataFlux library."""
