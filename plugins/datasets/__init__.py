"""Built-in dataset readers (spec §11) and the synthetic talking_world generator (the embedded default)."""
