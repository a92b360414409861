"""talking_world: the synthetic talking-head world, the embedded default dataset (issue 4)."""
