"""Typed records that plugins return from their hooks.

Plugins never hand memo-zoo bare dicts: every hook returns a list of these records, so the
registry can check what it was given and name the plugin when something is wrong.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel


@dataclass(frozen=True)
class ComponentSpec:
    """One swappable component of a slot.

    name:    the ``kind`` a recipe uses to pick it (``[a-z][a-z0-9_]*``).
    config:  the component's own pydantic model (``extra="forbid"``); the recipe validates the
             slot's options against it. It must not declare a ``kind`` field: memo-zoo adds it.
    factory: ``factory(config, **build_args) -> component``. ``build_args`` are the sizes the
             host decides (e.g. ``channels`` for a temporal module inside a UNet block); each
             slot documents its own in ``memo_zoo.slots``. It may be a lazy reference,
             ``memo_zoo.plugin.lazy.lazy("package.module:build")``, which imports its module only
             when called, so that listing and validating never import the component's libraries.
    summary: one line shown by ``memo-zoo ls``.
    """

    name: str
    config: type[BaseModel]
    factory: Callable[..., Any]
    summary: str


@dataclass(frozen=True)
class CommandSpec:
    """A subcommand a plugin adds to the ``memo-zoo`` CLI.

    configure: adds the command's arguments to its argparse sub-parser.
    run:       called with the parsed namespace; returns the process exit code.
    example:   one command line shown in ``--help``.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    example: str = ""
    description: str = field(default="")
