"""Does a saved ``MemoNet`` have the architecture a recipe asks for?

Parameter names alone cannot tell: two temporal modules of different kinds, or one
``linear_memory`` with another ``gamma``, can have identically named and shaped parameters, so
``load_state_dict`` accepts the weights and the network silently computes something else. The
saved ``memo_net.json`` says what the weights were trained as; this module compares it with the
recipe's ``model`` field by field, and every loader (generation, training resume, weight
initialisation) calls it BEFORE loading.

A recipe slot left unset (``model.temporal`` / ``model.audio_fusion`` is None) takes the
checkpoint's, so it is never a difference. ``model.network`` is always compared, both sides with
their defaults and preset filled in, so a checkpoint written before a field existed compares
equal when the field has its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from memo_zoo.errors import MemoZooError
from memo_zoo.model.memo_net import CONFIG_FILE, read_config
from memo_zoo.recipe.network import NetworkConfig

SLOTS = ("temporal", "audio_fusion")


def network_differences(net_dir: str | Path, recipe_model: Any) -> list[str]:
    """One line per architecture field where ``recipe_model`` (a recipe's ``model``: ``network``,
    ``temporal``, ``audio_fusion``) and ``net_dir/memo_net.json`` disagree, e.g.
    ``"model.temporal.gamma: recipe 0.8, checkpoint 0.9"``; empty when they agree.

    ``MemoZooError`` naming the file when ``memo_net.json`` is missing, unreadable or malformed: a
    config that cannot be read proves nothing, so it is never taken as "no differences".
    """
    config_file = Path(net_dir) / CONFIG_FILE
    saved = read_config(config_file)
    differences = _compare("model.network", _recipe_network(recipe_model.network),
                           _saved_network(saved["network"], config_file))
    for slot in SLOTS:
        mine = getattr(recipe_model, slot, None)
        if mine is not None:
            differences += _compare(f"model.{slot}", _dump(mine), _saved_slot(saved[slot], mine))
    return differences


def check_network_matches(net_dir: str | Path, recipe_model: Any, what: str,
                          ignore: Iterable[str] = ()) -> None:
    """Raise ``MemoZooError`` listing every field where the checkpoint ``net_dir`` and the recipe's
    ``model`` disagree (``network_differences``). ``what`` names the checkpoint in the message
    (e.g. ``"checkpoint runs/a/checkpoint-40"``); ``ignore`` lists dotted fields that may differ
    (e.g. ``"model.audio_fusion.dropout"`` when fine-tuning with another dropout)."""
    skipped = tuple(ignore)
    differences = [line for line in network_differences(net_dir, recipe_model)
                   if line.split(":", 1)[0] not in skipped]
    if differences:
        raise MemoZooError(
            f"{what} does not match the recipe's model: {Path(net_dir) / CONFIG_FILE} says it was trained "
            "with\n  " + "\n  ".join(differences)
            + "\nuse the recipe the checkpoint was trained with, or change these fields to the checkpoint's")


def _compare(prefix: str, ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    if ours.get("kind") != theirs.get("kind"):
        # Another component kind: its other fields mean different things, the kind says it all.
        return [f"{prefix}.kind: recipe {ours.get('kind')!r}, checkpoint {theirs.get('kind')!r}"]
    return [f"{prefix}.{key}: recipe {ours.get(key)!r}, checkpoint {theirs.get(key)!r}"
            for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]


def _dump(config: BaseModel | dict[str, Any]) -> dict[str, Any]:
    return config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)


def _recipe_network(network: Any) -> dict[str, Any]:
    if isinstance(network, NetworkConfig):
        return network.model_dump(mode="json")
    try:
        return NetworkConfig.model_validate(dict(network)).model_dump(mode="json")
    except ValidationError as error:
        raise MemoZooError(f"invalid model.network:\n{error}") from None


def _saved_network(saved: dict[str, Any], config_file: Path) -> dict[str, Any]:
    try:
        return NetworkConfig.model_validate(saved).model_dump(mode="json")
    except ValidationError as error:
        raise MemoZooError(f"{config_file}: its network config is invalid (a damaged or foreign file?):\n"
                           f"{error}") from None


def _saved_slot(saved: dict[str, Any], mine: Any) -> dict[str, Any]:
    """The saved component config with the defaults filled in by the recipe's config class when
    both are of one kind (so a field added since the checkpoint compares at its default)."""
    if not isinstance(mine, BaseModel) or saved.get("kind") != getattr(mine, "kind", None):
        return dict(saved)
    try:
        return type(mine).model_validate(saved).model_dump(mode="json")
    except ValidationError:
        return dict(saved)  # compared as written: the differing fields still show up
