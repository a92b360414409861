"""Properties of the recipe schema over everything registered (hypothesis).

- any recipe the schema accepts round-trips through YAML unchanged;
- a random invalid edit is rejected, and the error names exactly the edited path.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo.errors import RecipeError
from memo_zoo.recipe.loader import dump_recipe, validate_document
from memo_zoo.recipe.problems import user_path
from memo_zoo.recipe.schema import recipe_model
from tests.strategies import component_paths, option_leaves, recipe_documents

FAST = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def _valid_document(data, registry, model) -> dict:
    """A drawn recipe document that the schema accepts.

    Drawn option values can break a component's own rules (a label outside its label set, N
    motion frames beyond the position table); such options are removed until the document is
    valid, instead of discarding the draw, so that hypothesis does not filter most draws away.
    """
    doc = data.draw(recipe_documents(registry))
    for _ in range(20):
        try:
            model.model_validate(doc)
            return doc
        except ValidationError as error:
            for item in error.errors():
                path = user_path(doc, item["loc"])
                assume(item["type"] != "missing")
                target = _get(doc, path)
                if isinstance(target, dict) and "kind" in target:  # a rule across the component's options
                    for key in [k for k in target if k != "kind"]:
                        del target[key]
                else:
                    _get(doc, path[:-1]).pop(path[-1], None)
    assume(False)


def _dotted(path) -> str:
    return ".".join(str(p) for p in path)


@pytest.fixture(scope="module")
def model(registry):
    return recipe_model(registry)


@FAST
@given(data=st.data())
def test_accepted_recipes_round_trip_through_yaml(registry, model, data):
    doc = data.draw(recipe_documents(registry))
    try:
        recipe = model.model_validate(doc)
    except ValidationError:
        assume(False)  # drawn values can break cross-field rules; those are tested elsewhere
    text = dump_recipe(recipe)
    again = model.model_validate(yaml.safe_load(text))
    assert again == recipe
    assert dump_recipe(again) == text


@FAST
@given(data=st.data())
def test_an_unknown_option_is_rejected_at_its_path(registry, model, data):
    doc = _valid_document(data, registry, model)
    target = data.draw(st.sampled_from(component_paths(doc)))
    bad = copy.deepcopy(doc)
    _get(bad, target)["zz_not_an_option"] = 1
    with pytest.raises(RecipeError) as caught:
        validate_document(bad, registry, "drawn.yaml")
    assert [p for p, _ in caught.value.problems] == [_dotted(target + ("zz_not_an_option",))]


WRONG_VALUES = st.sampled_from([{"a": 1}, [1, 2], "not-a-value-of-any-option"])


@FAST
@given(data=st.data())
def test_an_option_of_the_wrong_type_is_rejected_at_its_path(registry, model, data):
    doc = _valid_document(data, registry, model)
    leaves = option_leaves(doc)
    assume(leaves)
    target = data.draw(st.sampled_from(leaves))
    wrong = data.draw(WRONG_VALUES)
    current = _get(doc, target)
    # A string is a fine value for a str field, and may be for an optional one left at None
    # (Optional[Path], e.g. task.out_dir): only non-strings are surely wrong there.
    assume(not (isinstance(wrong, str) and (isinstance(current, str) or current is None)))
    bad = copy.deepcopy(doc)
    parent = _get(bad, target[:-1])
    parent[target[-1]] = wrong
    with pytest.raises(RecipeError) as caught:
        validate_document(bad, registry, "drawn.yaml")
    paths = {p for p, _ in caught.value.problems}
    # A field-level rule fails at the field; a model-level rule (e.g. label in label set) at its component;
    # a mapping given to an optional section (e.g. task.train_detector: {a: 1}) inside that section.
    field = _dotted(target)
    assert paths and all(p in (field, _dotted(target[:-1])) or p.startswith(f"{field}.") for p in paths), paths


@FAST
@given(data=st.data())
def test_an_unknown_kind_is_rejected_at_its_path_listing_the_kinds(registry, model, data):
    doc = _valid_document(data, registry, model)
    target = data.draw(st.sampled_from(component_paths(doc)))
    bad = copy.deepcopy(doc)
    _get(bad, target)["kind"] = "zz_unregistered"
    with pytest.raises(RecipeError) as caught:
        validate_document(bad, registry, "drawn.yaml")
    (path, message), = caught.value.problems
    assert path == _dotted(target + ("kind",))
    assert "unknown kind 'zz_unregistered'" in message and "registered kinds" in message
