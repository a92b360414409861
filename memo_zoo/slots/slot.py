"""The record that declares a slot: everything memo-zoo derives from it in one place.

A slot's hook (``memo_zoo.plugin.hookspecs``), its field in the recipe (``memo_zoo.recipe.schema``),
its line in ``memo-zoo ls`` and its row in docs/architecture.md are all read from these records
(``memo_zoo.slots.table.SLOTS``); nothing else names a slot's place.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Slot:
    """One swappable part of MEMO, filled by registered components.

    name:             the slot's name (``memo-zoo ls NAME``, ``Registry.build(NAME, ...)``).
    recipe_path:      where a recipe names its component(s): ``"task"``, ``"model.temporal"``; a
                      dotted path puts the field in that section (``model``, ``data``).
    description:      the recipe field's description (``memo-zoo schema``, editors).
    summary:          one line for ``memo-zoo ls`` and the slot table in the docs.
    protocol:         what the host calls on a built component; its docstring is the contract.
    build_args:       keyword arguments the host passes to a component's factory besides the
                      config (sizes that the host, not the recipe, decides).
    optional_build_args: further facts a host may know and pass (the released network's per-site
                      attention width, say); a factory receives each only if its signature
                      accepts it (``call_factory``), so components written before the argument
                      existed keep working unchanged. Hosts that do not know them pass none.
    smoke_build_args: small values for ``build_args``, used by ``task: smoke`` and the contract kit.
    is_list:          the recipe field holds a list of components (pipeline stages, metrics).
    required:         a recipe must name one (only the task: what ``memo-zoo run`` does).
    """

    name: str
    recipe_path: str
    description: str
    summary: str
    protocol: type
    build_args: tuple[str, ...] = ()
    optional_build_args: tuple[str, ...] = ()
    smoke_build_args: dict[str, Any] = field(default_factory=dict)
    is_list: bool = False
    required: bool = False

    @property
    def hook(self) -> str:
        """The plugin hook that registers this slot's components (third-party plugins implement it)."""
        return f"{self.name}_components"

    @property
    def factory_signature(self) -> str:
        """How the host calls a component's factory, e.g. ``factory(config, channels)``; optional
        build args in brackets: ``factory(config, channels, audio_dim[, inner_channels, final])``."""
        optional = f"[, {', '.join(self.optional_build_args)}]" if self.optional_build_args else ""
        return f"factory({', '.join(('config',) + self.build_args)}{optional})"


def accepted_arguments(factory: Callable[..., Any], names: tuple[str, ...] | list[str]) -> set[str]:
    """Which of ``names`` the factory takes as keyword arguments.

    Read from ``factory.build`` when the object has one (``memo_zoo.plugin.manager.ComponentFactory``
    wraps the component's own function there; its ``__call__`` takes ``**build_args`` and would
    accept anything), else from the factory itself. A ``**kwargs`` parameter accepts every name.
    """
    target = getattr(factory, "build", factory)
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError) as err:  # a C callable without a signature: do not guess
        raise TypeError(f"cannot read the signature of factory {target!r} to decide which optional "
                        f"build args ({', '.join(names)}) it takes: {err}") from None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return set(names)
    by_keyword = {p.name for p in parameters
                  if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return {name for name in names if name in by_keyword}


def call_factory(factory: Callable[..., Any], required: Mapping[str, Any], optional: Mapping[str, Any]) -> Any:
    """``factory(**required, **<the optional ones it accepts>)``: how a host builds a component.

    ``required`` are the slot's ``build_args`` (every factory takes them); ``optional`` are facts
    from the slot's ``optional_build_args`` that this host knows. Each optional one is passed
    only if the factory's signature names it or has ``**kwargs`` (``accepted_arguments``), so a
    component that ignores, say, the attention width of the released network is still built, and
    one that needs it gets it without the host guessing what the component wants.
    """
    overlap = set(required) & set(optional)
    if overlap:
        raise ValueError(f"build arg(s) {', '.join(sorted(overlap))} given both as required and as optional")
    accepted = accepted_arguments(factory, tuple(optional))
    return factory(**required, **{name: value for name, value in optional.items() if name in accepted})
