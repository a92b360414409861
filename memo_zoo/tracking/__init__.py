"""MLflow tracking: runs with explicit ids (tracker.py), params flattening, store choice, prefixed views."""
