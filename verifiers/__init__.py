"""Answerers, judges, rule checks and the keep/discard policy (the cross-verify and filter stages)."""
