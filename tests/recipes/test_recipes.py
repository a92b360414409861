"""Every shipped recipe validates and opens with the command that runs it (torchtune style)."""

from pathlib import Path

import pytest

from memo_zoo.recipe.loader import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert any(p.name == "smoke.yaml" for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates_with_every_variant(path, registry):
    load_recipe(path, registry)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_opens_with_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# memo-zoo run recipes/") and path.name in first, first
