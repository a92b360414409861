"""memo-zoo: MEMO (memory-guided emotion-aware diffusion) as a zoo of swappable plugins."""

__version__ = "0.1.0"
