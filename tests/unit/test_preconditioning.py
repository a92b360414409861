"""Linear-skip preconditioning of the velocity (network.preconditioning, spec L1).

c_skip must be the least-squares coefficient of v = eps - z0 on z_t = (1 - t) z0 + t eps, and
c_out the standard deviation of the residual; checked against a sampled regression.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from memo_zoo.model.memo_net import preconditioning


@given(t=st.floats(0.02, 0.98), std=st.floats(0.1, 2.0))
def test_c_skip_and_c_out_match_a_sampled_regression(t, std):
    rng = np.random.default_rng(0)
    z0 = rng.normal(0.0, std, 200_000)
    eps = rng.normal(0.0, 1.0, 200_000)
    z_t, v = (1 - t) * z0 + t * eps, eps - z0
    slope = float(np.dot(z_t, v) / np.dot(z_t, z_t))
    residual = float(np.std(v - slope * z_t))
    c_skip, c_out = preconditioning(t, std, torch.zeros(1, 1, 1, 1, 1))
    # tolerance: 5 standard errors of the sampled slope (residual std / (sqrt(N) * std of z_t))
    standard_error = residual / (np.sqrt(len(z_t)) * np.std(z_t))
    assert float(c_skip) == pytest.approx(slope, abs=5 * standard_error)
    assert float(c_out) == pytest.approx(residual, rel=0.02)


def test_coefficients_broadcast_per_sample():
    t = torch.tensor([0.1, 0.9])
    c_skip, c_out = preconditioning(t, 0.5, torch.zeros(2, 3, 4, 2, 2))
    assert c_skip.shape == c_out.shape == (2, 1, 1, 1, 1)
    one, _ = preconditioning(0.9, 0.5, torch.zeros(1, 1, 1, 1, 1))
    assert float(c_skip[1]) == pytest.approx(float(one))
    # t -> 1: z_t is the noise, v ~ z_t; t -> 0: z_t is the data, v ~ -z_t
    assert float(preconditioning(1.0, 0.5, torch.zeros(1))[0]) == pytest.approx(1.0)
    assert float(preconditioning(0.0, 0.5, torch.zeros(1))[0]) == pytest.approx(-1.0)


def test_memo_net_adds_the_skip_to_the_unet_output(registry):
    from memo_zoo.model.memo_net import build_memo_net
    from memo_zoo.recipe.components import slot_factories
    from memo_zoo.recipe.network import NetworkConfig

    factories = slot_factories(registry)
    torch.manual_seed(0)
    plain = build_memo_net(NetworkConfig(preset="tiny"), factories("temporal", {"kind": "none"}),
                           factories("audio_fusion", {"kind": "none"})).eval()
    skip = build_memo_net(NetworkConfig(preset="tiny", preconditioning="linear_skip", data_std=0.4),
                          factories("temporal", {"kind": "none"}), factories("audio_fusion", {"kind": "none"})).eval()
    skip.load_state_dict(plain.state_dict())
    latents = torch.randn(2, 3, 4, 8, 8)
    t = torch.tensor([0.3, 0.8])
    tokens = torch.randn(2, plain.network_config.image_tokens, plain.network_config.cross_attention_dim)
    with torch.no_grad():
        unet = plain(latents, t, tokens)
        out = skip(latents, t, tokens)
    c_skip, c_out = preconditioning(t, 0.4, latents)
    torch.testing.assert_close(out, c_skip * latents + c_out * unet)
