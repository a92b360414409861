"""The registry of this CLI process, loaded once on first use.

Plugins and their commands load first (``plugin_commands``: enough to parse the command line and
answer ``--help``); the components, whose modules import torch and the model libraries, load on
the first ``registry()`` call, which ``memo_zoo.cli.app`` makes before it runs any command.
"""

from __future__ import annotations

from functools import lru_cache

from memo_zoo.plugin.manager import Registry, load_registry
from memo_zoo.plugin.types import CommandSpec


@lru_cache(maxsize=1)
def _plugins() -> Registry:
    return load_registry(components=False)


def plugin_commands() -> list[tuple[CommandSpec, str]]:
    """The commands plugins add, with the name of the plugin that adds each."""
    return list(_plugins().commands.values())


def registry() -> Registry:
    return _plugins().load_components()
