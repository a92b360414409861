"""Built-in emotion detectors (spec E4, E5, §4)."""
