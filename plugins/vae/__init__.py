"""Built-in autoencoders (spec A1)."""
