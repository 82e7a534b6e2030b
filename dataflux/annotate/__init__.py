"""Annotate: measure what can be measured in each clip, bin it into tags, and write a dense caption.

Each analyzer is a small `Analyzer` (a Stage) with its own declared resources, so on Ray each
model-backed analyzer is its own actor pool with its model loaded once per actor.
"""
