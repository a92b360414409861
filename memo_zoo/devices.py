"""Which torch device a component runs on, from its ``device`` option and ``MEMO_ZOO_DEVICE``."""

from __future__ import annotations

import torch

from memo_zoo.settings import get_settings


def resolve_device(device: str) -> torch.device:
    """``auto`` follows MEMO_ZOO_DEVICE (itself ``auto``: CUDA when available, else CPU)."""
    if device == "auto":
        device = get_settings().device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
