"""The registry of this CLI process, loaded once on first use."""

from __future__ import annotations

from functools import lru_cache

from memo_zoo.plugin.manager import Registry, load_registry


@lru_cache(maxsize=1)
def registry() -> Registry:
    return load_registry()
