"""The ``memo-zoo`` command line: core subcommands plus those plugins add through ``cli_commands``.

Errors a user can fix (``MemoZooError``) are printed on one screen with exit code 2 and no
traceback; Ctrl-C exits 130 after the open MLflow run has been marked FAILED.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

from memo_zoo import __version__
from memo_zoo.cli.termination import terminate_as_interrupt
from memo_zoo.errors import USER_ERROR_EXIT_CODE, MemoZooError
from memo_zoo.plugin.types import CommandSpec

INTERRUPTED_EXIT_CODE = 130


def core_commands() -> list[CommandSpec]:
    from memo_zoo.cli.ls import LS
    from memo_zoo.cli.run import RUN
    from memo_zoo.cli.schema import SCHEMA
    from memo_zoo.cli.validate import VALIDATE

    return [RUN, VALIDATE, SCHEMA, LS]


def _short_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def build_parser(commands: Sequence[CommandSpec]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memo-zoo",
        description="MEMO talking-video diffusion as a zoo of swappable plugins.",
        epilog="Run `memo-zoo COMMAND --help` for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"memo-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        epilog = f"example:\n  {command.example}" if command.example else None
        child = sub.add_parser(command.name, help=command.help, description=command.description or command.help,
                               epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        command.configure(child)
        child.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _short_warning
    terminate_as_interrupt()
    try:
        commands = core_commands()
        taken = {c.name for c in commands}
        for command, plugin in _plugin_commands():
            if command.name in taken:
                raise MemoZooError(f"plugin {plugin!r} adds the command {command.name!r}, which memo-zoo "
                                   f"already has; disable it with MEMO_ZOO_DISABLE_PLUGINS={plugin}")
            commands.append(command)
        args = build_parser(commands).parse_args(argv)
        return int(args._command.run(args) or 0)
    except MemoZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE


def _plugin_commands() -> list[tuple[CommandSpec, str]]:
    from memo_zoo.cli.registry import registry

    return list(registry().commands.values())
