"""Perception helpers shared by preprocessing, metrics and generation (faces, crops)."""
