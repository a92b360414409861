"""Built-in preprocessing stages of the data pipeline (spec §7)."""
