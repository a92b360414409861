"""Data: the common clip record, media decoding/encoding, datasets and training samples (spec §7, §11)."""
