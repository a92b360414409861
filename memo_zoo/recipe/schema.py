"""The recipe's pydantic model, built after plugins load.

Each slot field is a discriminated union over the components registered in that slot, keyed by
``kind``; each member is the component's own config model with ``kind`` added. So a plugin
extends the schema just by registering, and every option is validated by the component that
owns it (architecture.md, "Recipes").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from memo_zoo.plugin.manager import Registry
from memo_zoo.recipe.network import NetworkConfig
from memo_zoo.recipe.stage import stage_fields
from memo_zoo.slots import SLOTS, Slot


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrackingConfig(Strict):
    """Where the run is recorded (MLflow)."""

    uri: Optional[str] = Field(
        None, description="MLflow tracking URI; default: $MEMO_ZOO_TRACKING_URI, else sqlite:///mlflow.db "
                          "in the working directory")
    experiment: str = Field("memo-zoo", min_length=1, description="MLflow experiment name")
    artifact_dir: Optional[Path] = Field(
        None, description="artifact folder for a new experiment on a local store; default ./mlartifacts")


def _config_class_name(slot: str, kind: str) -> str:
    return "".join(part.capitalize() for part in f"{slot}_{kind}".split("_"))


def slot_union(registry: Registry, slot: str) -> Any:
    """The type of a field that holds one component of ``slot``: ``{kind: ..., **options}``."""
    members = []
    for kind, registered in sorted(registry.components.get(slot, {}).items()):
        base = registered.spec.config
        member = create_model(
            _config_class_name(slot, kind),
            __base__=base,
            __doc__=base.__doc__ or registered.spec.summary,
            kind=(Literal[kind], Field(description=f"component of slot '{slot}': {registered.spec.summary}")),
            # a task's stage options (train_vae: ...), typed by the task the registry holds
            **stage_fields(base, registry),
        )
        members.append(member)
    if not members:
        # An empty slot still appears in the schema; any value is rejected with a clear message.
        return Annotated[None, Field(description=f"no component registered in slot '{slot}'")]
    return Annotated[Union[tuple(members)], Field(discriminator="kind")]


def _model_own_fields() -> dict[str, tuple[Any, Any]]:
    return {"network": (NetworkConfig, Field(default_factory=NetworkConfig,
                                             description="UNet geometry of both nets: preset tiny | sd15 (spec A2, A3)"))}


# The sections that hold slots (a slot's recipe path ``section.field`` puts it in one): model name,
# docstring and the section's own, non-slot fields, which come first (made fresh for each model).
SECTIONS: dict[str, tuple[str, str, Callable[[], dict[str, tuple[Any, Any]]]]] = {
    "model": ("ModelSection", "The swappable parts of the MEMO network (spec §1-3); unset parts are not built.",
              _model_own_fields),
    "data": ("DataSection", "Where clips come from and how they are filtered (spec §7, §11).", dict),
}


def recipe_layout() -> list[tuple[str, list[Slot]]]:
    """The recipe's slot fields, top level first: ``(name, slots)`` where ``name`` is a top-level
    slot field (one slot) or a section (its slots, in table order).

    Top-level entries come in table order of their first slot, except that a required slot (the
    task: what the recipe does) leads; this order is the order of recipe dumps and of the schema.
    """
    layout: dict[str, list[Slot]] = {}
    for slot in sorted(SLOTS, key=lambda s: not s.required):
        head, _, rest = slot.recipe_path.partition(".")
        if rest and head not in SECTIONS:
            raise ValueError(f"slot {slot.name!r}: recipe path {slot.recipe_path!r} names no section "
                             f"({', '.join(SECTIONS)})")
        layout.setdefault(head, []).append(slot)
    return list(layout.items())


def _slot_field(slot: Slot, union: Any) -> tuple[Any, Any]:
    """The recipe field of ``slot``: a list of components, a required one, or an optional one."""
    if slot.is_list:
        return list[union], Field(default_factory=list, description=slot.description)
    if slot.required:
        return union, Field(..., description=slot.description)
    return Optional[union], Field(None, description=slot.description)


def build_recipe_model(registry: Registry) -> type[BaseModel]:
    """The ``Recipe`` model for the plugins in ``registry``."""
    component_fields: dict[str, tuple[Any, Any]] = {}
    for name, slots in recipe_layout():
        if name not in SECTIONS:
            component_fields[name] = _slot_field(slots[0], slot_union(registry, slots[0].name))
            continue
        model_name, doc, own_fields = SECTIONS[name]
        section = create_model(
            model_name, __base__=Strict, __doc__=doc, **own_fields(),
            **{s.recipe_path.partition(".")[2]: _slot_field(s, slot_union(registry, s.name)) for s in slots})
        component_fields[name] = (section, Field(default_factory=section))

    class RecipeBase(Strict):
        @model_validator(mode="after")
        def _variant_names(self) -> "RecipeBase":
            for section, names in (("sweep variant", self.sweep), ("profile", self.profiles)):
                for name in names:
                    if not name or not all(c.isalnum() or c in "-_." for c in name):
                        raise ValueError(f"{section} name {name!r} may use letters, digits, '-', '_', '.'")
            return self

    return create_model(
        "Recipe",
        __base__=RecipeBase,
        __doc__="A memo-zoo recipe: what to run, with which components, tracked where.",
        include=(Optional[Union[str, list[str]]], Field(
            None, exclude=True,
            description="base recipe file(s), relative to this one, merged under this recipe")),
        name=(str, Field(..., min_length=1, description="run name shown in MLflow")),
        description=(str, Field("", description="what this recipe is for")),
        seed=(int, Field(0, ge=0, description="global random seed")),
        **component_fields,
        tracking=(TrackingConfig, Field(default_factory=TrackingConfig)),
        profiles=(dict[str, dict[str, Any]], Field(
            default_factory=dict,
            description="named sets of {dotted.key: value} overrides chosen with `memo-zoo run --profile NAME` "
                        "(e.g. quick: a minutes-long version of an ablation for CI); applied before the "
                        "command line's overrides and before sweep variants")),
        sweep=(dict[str, dict[str, Any]], Field(
            default_factory=dict,
            description="ablation variants: name -> {dotted.key: value} overrides applied to this recipe; "
                        "each variant becomes a nested MLflow run")),
    )


def recipe_model(registry: Registry) -> type[BaseModel]:
    """``build_recipe_model`` cached on the registry (it depends only on what is registered)."""
    if registry.recipe_model is None:
        registry.recipe_model = build_recipe_model(registry)
    return registry.recipe_model


# Where each slot sits in a recipe, in recipe order: dotted field path -> (slot, holds a list of components).
SLOT_FIELDS: dict[str, tuple[str, bool]] = {
    slot.recipe_path: (slot.name, slot.is_list) for _, slots in recipe_layout() for slot in slots}


def named_components(recipe: BaseModel) -> list[tuple[str, str, BaseModel]]:
    """``(dotted_path, slot, config)`` for every component a validated recipe names."""
    found = []
    for path, (slot, is_list) in SLOT_FIELDS.items():
        value: Any = recipe
        for part in path.split("."):
            value = getattr(value, part)
        if value is None:
            continue
        items = list(enumerate(value)) if is_list else [(None, value)]
        for index, config in items:
            found.append((path if index is None else f"{path}.{index}", slot, config))
    return found
