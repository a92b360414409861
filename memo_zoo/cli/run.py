"""``memo-zoo run RECIPE [key=value ...]``: validate, then run the recipe's task under MLflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memo_zoo.cli.registry import registry
from memo_zoo.plugin.types import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. model.temporal.gamma=0.8 (values are YAML)")
    parser.add_argument("--variant", help="run only this variant of the recipe's sweep")
    parser.add_argument("--profile", help="apply the recipe's named profile of overrides first (e.g. quick)")
    parser.add_argument("--quick", action="store_const", const="quick", dest="profile",
                        help="same as --profile quick: the minutes-long version of a recipe that has one")


def _run(args: argparse.Namespace) -> int:
    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo.runner import run_recipe

    reg = registry()
    loaded = load_recipe(args.recipe, reg, args.overrides, profile=args.profile)
    outcome = run_recipe(loaded, reg, only_variant=args.variant,
                         on_start=lambda run_id: print(f"run {run_id} started", file=sys.stderr))
    print(f"run {outcome.run_id} finished ({outcome.tracking_uri})")
    for name, child in outcome.child_run_ids.items():
        print(f"  variant {name}: run {child}")
    return 0


RUN = CommandSpec(
    name="run",
    help="run a recipe (its task: smoke, train, generate, ...) and record it in MLflow",
    description="Validate RECIPE (with overrides and every sweep variant), then run its task. A recipe "
                "with a `sweep:` becomes one parent MLflow run with a nested run per variant.",
    configure=_configure,
    run=_run,
    example="memo-zoo run recipes/smoke.yaml seed=3 model.temporal.gamma=0.8",
)
