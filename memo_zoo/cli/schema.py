"""``memo-zoo schema``: the recipe's JSON schema as the installed plugins make it."""

from __future__ import annotations

import argparse
import json

from memo_zoo.cli.registry import registry
from memo_zoo.plugin.types import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")


def _run(args: argparse.Namespace) -> int:
    from memo_zoo.recipe.schema import recipe_model

    print(json.dumps(recipe_model(registry()).model_json_schema(), indent=args.indent))
    return 0


SCHEMA = CommandSpec(
    name="schema",
    help="print the recipe JSON schema (for editors and for review)",
    description="Print the JSON schema of a recipe with the currently installed plugins: every slot "
                "is a union over the registered components, keyed by `kind`.",
    configure=_configure,
    run=_run,
    example="memo-zoo schema > recipe.schema.json",
)
