"""The example plugin's own tests: memo-zoo's contract kit, plus what is particular to this module.

Run after installing the package (`pip install .` then `pytest tests`): the kit looks the
component up in the registry of the installed plugins, so it also checks the entry point.
"""

from __future__ import annotations

import torch

from memo_zoo.plugin.manager import load_registry
from memo_zoo.testing import build_component, check_component, perturb


def test_causal_conv_keeps_the_temporal_contract():
    # One call: documented options, identity at init, shapes in float32 and bfloat16, gradients,
    # state dict, seeding and contexts that stay valid, as memo-zoo's own temporal modules.
    check_component("temporal", "causal_conv")


def test_causal_conv_keeps_the_contract_with_a_longer_kernel():
    check_component("temporal", "causal_conv", options={"kernel_size": 5})


def test_streaming_clip_by_clip_equals_one_long_convolution():
    """Particular to this module: the context carries the last frames, so two clips streamed one
    after the other give what one convolution over both would."""
    module = build_component("temporal", load_registry().get("temporal", "causal_conv"), {"kernel_size": 3})
    perturb(module)
    x = torch.randn(2, 5, module.channels, 3, 3, generator=torch.Generator().manual_seed(0))
    ctx = module.new_context(2)
    whole = module(torch.cat([x, x + 1], 1), ctx)
    first = module(x, ctx)
    second = module(x + 1, module.update_context(ctx, x))
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=0)
