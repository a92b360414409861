"""Building a component the way its host does, seeded, for the contract checks.

Every check takes a component as the registry holds it (a ``Registered``) or as a plugin
declares it (a ``ComponentSpec``), so a plugin author can check a spec before installing it.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch

from memo_zoo.slots import SLOT_BY_NAME
from memo_zoo.plugin.types import ComponentSpec


class MissingOptions(ValueError):
    """The component has options without a default and the check was not given values for them.

    Not an ``AssertionError``: the component breaks no contract, the check needs real values
    (local weights, a dataset root) passed as ``options={...}``.
    """


def expect(condition: Any, message: str) -> None:
    """Raise ``AssertionError(message)`` unless ``condition`` holds.

    A plain ``assert`` in this library would be stripped under ``python -O`` (pytest rewrites
    asserts only in test modules), and every check would then pass silently.
    """
    if not condition:
        raise AssertionError(message)


def spec_of(entry: Any) -> ComponentSpec:
    """The ``ComponentSpec`` of a registry entry (``Registered``), or ``entry`` itself if it is one."""
    spec = getattr(entry, "spec", entry)
    expect(isinstance(spec, ComponentSpec),
           f"expected a ComponentSpec or a registry entry, got {type(entry).__name__}")
    return spec


def required_options(entry: Any) -> list[str]:
    """Options without a default (a dataset's root, local weights): a build needs real values for them."""
    return [name for name, field in spec_of(entry).config.model_fields.items() if field.is_required()]


def build_component(slot: str, entry: Any, options: Mapping[str, Any] | None = None, seed: int = 0) -> Any:
    """``factory(config(**options), **smoke_build_args)`` with torch seeded by ``seed``.

    The slot's smoke build arguments (``memo_zoo.slots``) are the small sizes
    ``task: smoke`` uses. The caller's global torch RNG is left as it was, so a check does not
    change what the tests after it draw.
    """
    spec = spec_of(entry)
    options = dict(options or {})
    missing = [name for name in required_options(spec) if name not in options]
    if missing:
        raise MissingOptions(f"{spec.name!r} needs option(s) {', '.join(missing)} to be built: pass "
                             f"options={{{', '.join(f'{n!r}: ...' for n in missing)}}}")
    config = spec.config(**options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.factory(config, **SLOT_BY_NAME[slot].smoke_build_args)


def perturb(module: torch.nn.Module, seed: int = 1) -> None:
    """Move zero-initialised output layers off zero so that the function is no longer the identity.

    The shape, gradient and state-dict checks would pass trivially on an identity module.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def randn(seed: int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Seeded standard-normal input, drawn in float32 then cast (the same values in every dtype)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def expect_gradients(module: torch.nn.Module) -> None:
    """After a backward pass: a non-zero gradient reached every parameter (none is left out of training)."""
    for name, p in module.named_parameters():
        expect(p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}")


def perturbed_pair(slot: str, entry: Any, options: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
    """(module, copy): a perturbed build (seed 3) and another seed's build with its state dict loaded."""
    first = build_component(slot, entry, options, seed=3)
    perturb(first)
    second = build_component(slot, entry, options, seed=99)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    return first, second
