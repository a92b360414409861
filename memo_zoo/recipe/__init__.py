"""Recipes: the pydantic schema built from the registry, YAML loading, overrides and sweeps."""

from memo_zoo.recipe.loader import LoadedRecipe, dump_recipe, load_recipe, variant_documents
from memo_zoo.recipe.schema import build_recipe_model, named_components, recipe_model

__all__ = ["LoadedRecipe", "build_recipe_model", "dump_recipe", "load_recipe", "named_components",
           "recipe_model", "variant_documents"]
