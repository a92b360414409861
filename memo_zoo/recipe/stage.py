"""Task options that hold the options of another registered task, run first as a stage.

The train and experiment tasks can train the recipe's autoencoder first (``train_vae:``) and the
experiment its emotion detector (``train_detector:``). Those trainings are tasks of built-in
components, registered by the components' plugins, and the core never imports a built-in; so a
core task names the stage by its task kind::

    train_vae: Annotated[Optional[Any], Stage("train_vae")] = Field(None, description=...)

and the recipe model (``memo_zoo.recipe.schema``) types the field with the config class the
registry holds for that kind. A recipe is thus validated, reported (same paths, same messages)
and described in ``memo-zoo schema`` exactly as if the core task had named the class itself.
With no such task registered (its plugin disabled) the field accepts only null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from memo_zoo.plugin.manager import Registry


@dataclass(frozen=True)
class Stage:
    """Marks a task option (in ``Annotated``) as the options of the registered task ``task``."""

    task: str


def stage_of(field: FieldInfo) -> Stage | None:
    return next((m for m in field.metadata if isinstance(m, Stage)), None)


def stage_fields(config: type[BaseModel], registry: Registry) -> dict[str, tuple[Any, FieldInfo]]:
    """``config``'s stage fields typed by the registry, as ``create_model`` field definitions (a
    subclass made with them keeps the fields' order, defaults and descriptions)."""
    fields: dict[str, tuple[Any, FieldInfo]] = {}
    for name, field in config.model_fields.items():
        stage = stage_of(field)
        if stage is None:
            continue
        registered = registry.components.get("task", {}).get(stage.task)
        # Without the task (its plugin disabled) the stage cannot run: only null is valid.
        annotation = type(None) if registered is None else Optional[registered.spec.config]
        fields[name] = (annotation, FieldInfo.merge_field_infos(field, annotation=annotation))
    return fields
