"""Shared by the diagnostic scripts that probe a trained MEMO network (reference_reliance.py,
audio_reliance.py): their common command-line options and the loading of recipe and checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def parser_for(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the options every probe takes: recipe overrides, --recipe,
    --checkpoint, --split, --times, --seed."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides (model.network.latent_channels=8 ...), as "
                                                     "the checkpoint was trained")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--split", default="test", help="dataset split whose clips are used (test: unseen people)")
    parser.add_argument("--times", type=float, nargs="+", default=[0.3, 0.6, 0.9], help="flow times t probed")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def load_trained(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(registry, recipe, GeneratorModel) of the parsed options, with torch seeded from --seed."""
    import torch

    from memo_zoo.generate.loading import load_generator_model
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.loader import load_recipe

    torch.manual_seed(args.seed)
    registry = load_registry()
    recipe = load_recipe(args.recipe, registry, args.overrides).recipe
    return registry, recipe, load_generator_model(args.checkpoint, recipe, registry)
