"""Rectified-flow objective and flow-time sampling (spec L1), and the phase arithmetic of
``TrainConfig`` (L2, L3)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo.train.config import TrainConfig
from memo_zoo.train.loss import (data_loss_from_velocity_loss, logit_normal, noise_from_velocity, noisy_latents, per_sample_mse, sample_times,
                                 velocity_loss, velocity_target, weighted_noise_loss)


def _tensors(seed: int, shape=(3, 2, 4, 5, 5)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3)]


@settings(max_examples=40)
@given(seed=st.integers(0, 2**16), t=st.lists(st.floats(0.0, 0.995), min_size=3, max_size=3),
       scale=st.floats(0.01, 10.0))
def test_velocity_mse_equals_the_papers_weighted_noise_loss(seed, t, scale):
    """L1: lambda(t) |eps_hat - eps|^2 with lambda = 1/(1-t)^2 and eps_hat from the predicted
    velocity is exactly the unweighted velocity MSE."""
    z0, noise, v_hat = _tensors(seed)
    z0 = z0 * scale
    t = torch.tensor(t, dtype=torch.float64)
    z_t = noisy_latents(z0, noise, t)
    eps_hat = noise_from_velocity(z_t, v_hat, t)
    paper = weighted_noise_loss(eps_hat, noise, t)
    ours = velocity_loss(v_hat, z0, noise).double()
    # Both in float64 here: the identity holds to rounding.
    exact = (v_hat - velocity_target(z0, noise)).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(paper, exact, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ours, exact, rtol=1e-5, atol=1e-6)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), t=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))
def test_data_target_is_the_mse_of_the_clean_latents_the_velocity_implies(seed, t):
    """``loss_target: data`` (the release's finetune.py): z0_hat = z_t - t v_hat, |z0_hat - z0|^2,
    which is the velocity MSE times t^2."""
    z0, noise, v_hat = _tensors(seed)
    t = torch.tensor(t, dtype=torch.float64)
    z_t = noisy_latents(z0, noise, t)
    z0_hat = z_t - t.reshape(-1, 1, 1, 1, 1) * v_hat
    direct = (z0_hat - z0).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(data_loss_from_velocity_loss(velocity_loss(v_hat, z0, noise).double(), t), direct,
                               rtol=1e-5, atol=1e-9)


def test_the_weighted_noise_form_blows_up_where_the_velocity_form_does_not():
    z0, noise, v_hat = _tensors(1)
    t = torch.full((3,), 1.0 - 1e-7, dtype=torch.float64)
    z_t = noisy_latents(z0, noise, t)
    # eps_hat - eps is (1 - t)(v_hat - v): in float32 it is rounded away entirely near t = 1.
    eps_hat = noise_from_velocity(z_t.float(), v_hat.float(), t.float())
    paper = weighted_noise_loss(eps_hat, noise.float(), t)
    ours = velocity_loss(v_hat, z0, noise)
    assert torch.isfinite(ours).all() and (ours > 1).all()
    assert not torch.allclose(paper, ours, rtol=0.1)


def test_noisy_latents_run_from_data_to_noise_with_velocity_eps_minus_z0():
    z0, noise, _ = _tensors(2)
    ones = torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(noisy_latents(z0, noise, 0 * ones), z0)
    torch.testing.assert_close(noisy_latents(z0, noise, ones), noise)
    t, dt = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), 1e-6
    finite = (noisy_latents(z0, noise, t + dt) - noisy_latents(z0, noise, t - dt)) / (2 * dt)
    torch.testing.assert_close(finite, velocity_target(z0, noise), rtol=1e-6, atol=1e-6)


def test_per_sample_mse_keeps_one_loss_per_sample():
    a, b = torch.zeros(4, 2, 3), torch.ones(4, 2, 3)
    b[1] *= 2
    torch.testing.assert_close(per_sample_mse(a, b), torch.tensor([1.0, 4.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="t must be"):
        noisy_latents(a, b, torch.zeros(3))


def test_logit_normal_times_are_sigmoids_of_a_normal():
    g = torch.Generator().manual_seed(0)
    t = logit_normal(50_000, 0.0, 1.0, g)
    assert t.dtype == torch.float32 and ((t > 0) & (t < 1)).all()
    logits = torch.logit(t.double())
    assert abs(float(logits.mean())) < 0.02 and abs(float(logits.std()) - 1.0) < 0.02
    # Mass near the middle, thin at the ends (vs uniform's 10 % in each of these tails).
    assert float((t < 0.1).double().mean()) < 0.03 and abs(float(t.median()) - 0.5) < 0.01
    shifted = logit_normal(50_000, 1.0, 0.5, torch.Generator().manual_seed(1))
    assert abs(float(shifted.median()) - 1 / (1 + math.exp(-1.0))) < 0.01
    again = logit_normal(50_000, 0.0, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(t, again)
    uniform = sample_times(50_000, "uniform", 0.0, 1.0, torch.Generator().manual_seed(0))
    assert abs(float((uniform < 0.1).double().mean()) - 0.1) < 0.01
    with pytest.raises(ValueError, match="unknown timestep distribution"):
        sample_times(1, "cosine", 0.0, 1.0)


def test_phases_split_the_steps_and_the_last_one_may_take_the_rest():
    config = TrainConfig(steps=10, phases=[{"name": "stage1", "steps": 3, "trainable": "spatial"},
                                           {"name": "warmup", "steps": 2, "trainable": "new"},
                                           {"name": "joint", "trainable": "all"}])
    assert [(p.name, a, b) for p, a, b in config.phase_spans()] == [("stage1", 0, 3), ("warmup", 3, 5),
                                                                     ("joint", 5, 10)]
    assert [config.phase_at(s)[1].trainable for s in (0, 2, 3, 4, 5, 9)] == ["spatial"] * 2 + ["new"] * 2 + ["all"] * 2
    assert TrainConfig().phases[0].trainable == "all"
    with pytest.raises(ValueError):
        config.phase_at(10)


@pytest.mark.parametrize("phases, message", [
    ([{"name": "a", "steps": 3}, {"name": "b", "steps": 3}], "add up to 6 but steps=10"),
    ([{"name": "a"}, {"name": "b", "steps": 3}], "only the last phase"),
    ([{"name": "a", "steps": 10}, {"name": "b"}], "leaving none"),
    ([{"name": "a", "steps": 5}, {"name": "a"}], "unique"),
])
def test_inconsistent_phases_are_refused(phases, message):
    with pytest.raises(ValidationError, match=message):
        TrainConfig(steps=10, phases=phases)


def test_train_config_forbids_unknown_fields_and_describes_every_field():
    with pytest.raises(ValidationError):
        TrainConfig(stepz=3)
    for model in (TrainConfig, *(f.annotation for f in TrainConfig.model_fields.values()
                                 if isinstance(f.annotation, type) and hasattr(f.annotation, "model_fields"))):
        assert all(f.description for f in model.model_fields.values()), model
