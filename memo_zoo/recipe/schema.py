"""The recipe's pydantic model, built after plugins load.

Each slot field is a discriminated union over the components registered in that slot, keyed by
``kind``; each member is the component's own config model with ``kind`` added. So a plugin
extends the schema just by registering, and every option is validated by the component that
owns it (architecture.md, "Recipes").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from memo_zoo.recipe.network import NetworkConfig
from memo_zoo.plugin.manager import Registry
from memo_zoo.plugin.slots import SLOTS


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
        )
        members.append(member)
    if not members:
        # An empty slot still appears in the schema; any value is rejected with a clear message.
        return Annotated[None, Field(description=f"no component registered in slot '{slot}'")]
    return Annotated[Union[tuple(members)], Field(discriminator="kind")]


def build_recipe_model(registry: Registry) -> type[BaseModel]:
    """The ``Recipe`` model for the plugins in ``registry``."""
    slot = {s.name: slot_union(registry, s.name) for s in SLOTS}
    opt = {name: Optional[t] for name, t in slot.items()}

    model_section = create_model(
        "ModelSection",
        __base__=Strict,
        __doc__="The swappable parts of the MEMO network (spec §1-3); unset parts are not built.",
        network=(NetworkConfig, Field(default_factory=NetworkConfig,
                                      description="UNet geometry of both nets: preset tiny | sd15 (spec A2, A3)")),
        temporal=(opt["temporal"], Field(None, description="temporal module (spec §2)")),
        audio_fusion=(opt["audio_fusion"], Field(None, description="audio module (spec §3)")),
        audio_encoder=(opt["audio_encoder"], Field(None, description="audio encoder (spec A5)")),
        image_encoder=(opt["image_encoder"], Field(None, description="image encoder (spec A4)")),
        vae=(opt["vae"], Field(None, description="autoencoder (spec A1)")),
    )
    data_section = create_model(
        "DataSection",
        __base__=Strict,
        __doc__="Where clips come from and how they are filtered (spec §7, §11).",
        dataset=(opt["dataset"], Field(None, description="dataset reader")),
        preprocess=(list[slot["preprocess"]], Field(default_factory=list, description="pipeline stages, in order")),
    )

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
        task=(slot["task"], Field(..., description="what `memo-zoo run` does with this recipe")),
        model=(model_section, Field(default_factory=model_section)),
        emotion_detector=(opt["emotion_detector"], Field(None, description="emotion detector (spec §4)")),
        scheduler=(opt["scheduler"], Field(None, description="sampler (spec I3)")),
        data=(data_section, Field(default_factory=data_section)),
        metrics=(list[slot["metric"]], Field(default_factory=list, description="evaluation metrics (spec §8)")),
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


# Where each slot sits in a recipe: dotted field path -> (slot, holds a list of components).
SLOT_FIELDS: dict[str, tuple[str, bool]] = {
    "task": ("task", False),
    "model.temporal": ("temporal", False),
    "model.audio_fusion": ("audio_fusion", False),
    "model.audio_encoder": ("audio_encoder", False),
    "model.image_encoder": ("image_encoder", False),
    "model.vae": ("vae", False),
    "emotion_detector": ("emotion_detector", False),
    "scheduler": ("scheduler", False),
    "data.dataset": ("dataset", False),
    "data.preprocess": ("preprocess", True),
    "metrics": ("metric", True),
}


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
