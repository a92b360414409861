"""The ``memo-zoo`` command line: core subcommands plus those plugins add through ``cli_commands``.

Errors a user can fix (``MemoZooError``) are printed on one screen with exit code 2 and no
traceback; Ctrl-C exits 130 (SIGTERM 143) after the open MLflow run has been marked FAILED.

Options and ``key=value`` overrides may come in any order after the command
(``memo-zoo run R --quick seed=3``): each command's arguments are parsed with
``parse_intermixed_args`` (see ``CommandLineParser``).

When the reader of stdout goes away (``memo-zoo validate --print R | head -1``), the command
stops quietly with exit code 141 (128 + SIGPIPE), what a shell reports for any Unix tool killed
by SIGPIPE: the output was cut short, so it is not a success (``set -o pipefail`` scripts see
it), but neither is it a bug worth a traceback.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import warnings
from typing import Sequence

from memo_zoo import __version__
from memo_zoo.cli.termination import terminate_as_interrupt
from memo_zoo.errors import USER_ERROR_EXIT_CODE, MemoZooError
from memo_zoo.plugin.types import CommandSpec
from memo_zoo.signals import Terminated, exit_code_for

# 128 + SIGPIPE: what a shell reports for a tool killed by a closed pipe (module docstring).
BROKEN_PIPE_EXIT_CODE = 141


def core_commands() -> list[CommandSpec]:
    from memo_zoo.cli.demo import DEMO
    from memo_zoo.cli.evaluate import EVALUATE
    from memo_zoo.cli.export import EXPORT
    from memo_zoo.cli.generate import GENERATE
    from memo_zoo.cli.ls import LS
    from memo_zoo.cli.report import REPORT
    from memo_zoo.cli.run import RUN
    from memo_zoo.cli.schema import SCHEMA
    from memo_zoo.cli.train import TRAIN
    from memo_zoo.cli.validate import VALIDATE

    return [RUN, VALIDATE, SCHEMA, LS, REPORT, GENERATE, TRAIN, EXPORT, EVALUATE, DEMO]


def _short_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


class CommandLineParser(argparse.ArgumentParser):
    """The top-level parser: picks the command, then parses the rest with the command's own parser
    in intermixed mode, so options may follow positional overrides (``run R --quick seed=3``).

    argparse's ``parse_intermixed_args`` refuses parsers with subparsers, hence the two steps.
    """

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        argv = list(sys.argv[1:] if args is None else args)
        children = _subcommands(self)
        if not argv or argv[0] not in children:
            # No command, a top-level option (--help, --version) or an unknown command: argparse's own
            # handling prints the help, the version, or the error listing the commands.
            return super().parse_args(argv, namespace)
        name, rest = argv[0], argv[1:]
        namespace = namespace if namespace is not None else argparse.Namespace()
        setattr(namespace, "command", name)
        return children[name].parse_intermixed_args(rest, namespace)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse offers no public accessor for its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def build_parser(commands: Sequence[CommandSpec]) -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog="memo-zoo",
        description="MEMO talking-video diffusion as a zoo of swappable plugins.",
        epilog="Run `memo-zoo COMMAND --help` for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"memo-zoo {__version__}")
    # Commands get plain parsers (not CommandLineParser): each is parsed as one flat command line.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=argparse.ArgumentParser)
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
        # Parsing (and --help) needs only the commands; the components load here, before any
        # command runs, so that every command meets the same registry and plugin warnings.
        _load_components()
        code = int(args._command.run(args) or 0)
        # Flush here, not at interpreter exit, so a reader that went away is noticed below.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # a pipe other than stdout (a subprocess, a socket) broke: that is a real failure
        _silence_stdout()
        return BROKEN_PIPE_EXIT_CODE
    except MemoZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    except KeyboardInterrupt as interrupt:
        print("terminated" if isinstance(interrupt, Terminated) else "interrupted", file=sys.stderr)
        return exit_code_for(interrupt)


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports POLLERR on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True  # no poll (Windows) or no real stdout: trust the exception, as Python's docs do


def _silence_stdout() -> None:
    # Python flushes stdout once more at exit; pointed at devnull, that flush cannot raise
    # BrokenPipeError again ("Exception ignored ... BrokenPipeError" and exit code 120).
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout has no file descriptor (embedded use): nothing will be flushed to a pipe


def _plugin_commands() -> list[tuple[CommandSpec, str]]:
    from memo_zoo.cli.registry import plugin_commands

    return plugin_commands()


def _load_components() -> None:
    from memo_zoo.cli.registry import registry

    registry()
