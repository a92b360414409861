"""The temporal slot's contract (spec §2; hook ``temporal_components``).

A temporal module is built by ``factory(config, channels)`` and offers ``new_context(batch)``,
``update_context(ctx, motion)`` and ``forward(x, ctx)`` on (batch, frames, channels, H, W).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from memo_zoo.slots import SLOT_BY_NAME
from memo_zoo.testing.build import build_component, expect, expect_gradients, perturb, perturbed_pair, randn

SLOT = "temporal"
CHANNELS = SLOT_BY_NAME[SLOT].smoke_build_args["channels"]
DTYPES = (torch.float32, torch.bfloat16)


def clip(seed: int, frames: int = 5, batch: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A seeded (batch, frames, channels, 3, 4) feature clip at the smoke channel count."""
    return randn(seed, batch, frames, CHANNELS, 3, 4, dtype=dtype)


def check_identity_at_init(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """A new module returns its input unchanged, with an empty context and after a memory update (A6)."""
    module = build_component(SLOT, entry, options)
    x, motion = clip(0), clip(1, frames=6)
    ctx = module.new_context(2)
    expect(torch.equal(module(x, ctx), x), "a new temporal module must be the identity (spec A6)")
    expect(torch.equal(module(x, module.update_context(ctx, motion)), x),
           "a new temporal module must be the identity with memory too (spec A6)")


def check_shape_and_dtype(entry: Any, dtype: torch.dtype = torch.float32,
                          options: Mapping[str, Any] | None = None) -> None:
    """Once trained (perturbed), the output keeps the input's shape and ``dtype`` and is finite."""
    module = build_component(SLOT, entry, options).to(dtype)
    perturb(module)
    x = clip(0, dtype=dtype)
    ctx = module.update_context(module.new_context(2), clip(1, frames=3, dtype=dtype))
    out = module(x, ctx)
    expect(out.shape == x.shape and out.dtype == dtype,
           f"in {x.shape} {dtype}, out {tuple(out.shape)} {out.dtype}: shape and dtype must be kept")
    expect(torch.isfinite(out.float()).all(), f"non-finite output in {dtype}")


def check_gradients(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """Gradients reach the input and every parameter (none is left out of training)."""
    module = build_component(SLOT, entry, options)
    perturb(module)
    x = clip(0).requires_grad_()
    ctx = module.update_context(module.new_context(2), clip(1, frames=3))
    module(x, ctx).square().sum().backward()
    expect(x.grad is not None and x.grad.abs().sum() > 0, "no gradient reaches the input")
    expect_gradients(module)


def check_state_dict_and_seeding(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """A state dict carries the whole function (a checkpoint restores it) and one seed builds one module."""
    first, second = perturbed_pair(SLOT, entry, options)
    x, motion = clip(0), clip(1, frames=4)
    out1 = first(x, first.update_context(first.new_context(2), motion))
    out2 = second(x, second.update_context(second.new_context(2), motion))
    expect(torch.equal(out1, out2), "loading a state dict must reproduce the module's output")
    again = build_component(SLOT, entry, options, seed=3)
    perturb(again)
    expect(all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values())),
           "two builds with one seed must give the same parameters")


def check_old_context_stays_valid(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """T6: a context is read at every denoising step; updating must not change an old one."""
    module = build_component(SLOT, entry, options)
    perturb(module)
    x = clip(0)
    ctx = module.update_context(module.new_context(2), clip(1, frames=3))
    before = module(x, ctx)
    module.update_context(ctx, clip(2, frames=3))
    expect(torch.equal(module(x, ctx), before), "update_context changed the context it was given (spec T6)")


def check_temporal(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """Every check of the temporal contract, shape and dtype in float32 and bfloat16."""
    check_identity_at_init(entry, options)
    for dtype in DTYPES:
        check_shape_and_dtype(entry, dtype, options)
    check_gradients(entry, options)
    check_state_dict_and_seeding(entry, options)
    check_old_context_stays_valid(entry, options)
