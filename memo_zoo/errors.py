"""Errors a user can fix: the CLI prints them on one screen and exits with code 2, no traceback."""

from __future__ import annotations

USER_ERROR_EXIT_CODE = 2


class MemoZooError(Exception):
    """Base of every error caused by input (recipe, plugin, file) rather than by a bug."""


class PluginError(MemoZooError):
    """A plugin broke a registry rule: two components with one name, a malformed hook result."""


class RecipeError(MemoZooError):
    """A recipe could not be read, merged, overridden or validated.

    ``problems`` holds one ``(dotted_path, message)`` pair per invalid field, so that callers
    (and tests) can check where the problem is without parsing the text.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]], headline: str = "invalid recipe"):
        self.source = source
        self.problems = problems
        self.headline = headline
        lines = [f"{headline}: {source}"]
        lines += [f"  {path or '<root>'}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class MissingWeightsError(MemoZooError):
    """A pretrained weight file or folder that memo-zoo must load from local disk is not there."""
