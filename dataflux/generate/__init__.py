"""Generate: taxonomy-guided multiple-choice questions about each clip."""
