"""A slot value from a recipe or a saved checkpoint -> its validated config -> its factory.

The network (``memo_zoo.model``) never sees the registry or the recipe schema: the code that
reads a recipe (training, generation) turns the recipe's ``model.temporal`` / ``model.audio_fusion``
into factories here and hands those over; a saved network is rebuilt with ``slot_factories``,
which does the same for the configs in its ``memo_net.json``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping

from pydantic import BaseModel, TypeAdapter, ValidationError

from memo_zoo.errors import MemoZooError
from memo_zoo.plugin.manager import ComponentFactory, Registry
from memo_zoo.recipe.schema import slot_union


def component_config(registry: Registry, slot: str, value: BaseModel | Mapping[str, Any]) -> BaseModel:
    """``value`` (``{kind: ..., **options}`` or a config object with ``kind``) validated for ``slot``."""
    data = value.model_dump() if isinstance(value, BaseModel) else dict(value)
    try:
        return TypeAdapter(slot_union(registry, slot)).validate_python(data)
    except ValidationError as error:
        raise MemoZooError(f"invalid {slot} config {data!r}:\n{error}") from None


def component_factory(registry: Registry, slot: str, value: BaseModel | Mapping[str, Any]) -> ComponentFactory:
    """The factory of the component ``value`` selects in ``slot``, its config (re)validated."""
    return registry.factory(slot, component_config(registry, slot, value))


def slot_factories(registry: Registry) -> Callable[[str, BaseModel | Mapping[str, Any]], ComponentFactory]:
    """``component_factory`` bound to ``registry``: what ``MemoNet.from_pretrained`` is given to
    turn a checkpoint's saved component configs into factories."""
    return partial(component_factory, registry)
