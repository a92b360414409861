"""``memo-zoo validate RECIPE...``: check recipes (and their sweep variants) without running them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memo_zoo.cli.registry import registry
from memo_zoo.errors import USER_ERROR_EXIT_CODE, RecipeError
from memo_zoo.plugin.types import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipes", nargs="+", type=Path, help="recipe YAML files")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value",
                        help="an override applied to every recipe (repeatable)")
    parser.add_argument("--profile", help="validate with this profile applied (every profile is checked anyway)")
    parser.add_argument("--print", dest="print_resolved", action="store_true",
                        help="print each resolved recipe (includes and overrides applied, defaults filled)")


def _run(args: argparse.Namespace) -> int:
    from memo_zoo.recipe.loader import dump_recipe, load_recipe

    reg = registry()
    failed = 0
    for path in args.recipes:
        try:
            loaded = load_recipe(path, reg, args.overrides, profile=args.profile)
        except RecipeError as error:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
            continue
        variants = len(loaded.recipe.sweep)
        print(f"ok: {path}" + (f" ({variants} sweep variants)" if variants else ""))
        if args.print_resolved:
            print(dump_recipe(loaded.recipe))
    return USER_ERROR_EXIT_CODE if failed else 0


VALIDATE = CommandSpec(
    name="validate",
    help="validate recipes against the schema of the installed plugins",
    configure=_configure,
    run=_run,
    example="memo-zoo validate recipes/*.yaml",
)
