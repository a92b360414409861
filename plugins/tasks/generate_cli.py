"""Adds ``memo-zoo generate`` to the CLI through the ``cli_commands`` hook (entry point
``builtin_generate_cli``); the command itself is ``memo_zoo.cli.generate.GENERATE``."""

from __future__ import annotations

from memo_zoo.cli.generate import GENERATE
from memo_zoo.plugin import CommandSpec, hookimpl


@hookimpl
def cli_commands() -> list[CommandSpec]:
    return [GENERATE]
