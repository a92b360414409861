"""flow_euler (spec L1, I3): the Euler sampler of the rectified-flow ODE."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from memo_zoo_plugins.scheduler.flow_euler import FlowEulerConfig, FlowEulerSampler


def sample(sampler, noise, velocity_fn):
    x = noise
    times = sampler.timesteps()
    for t, t_next in zip(times[:-1], times[1:]):
        x = sampler.step(x, velocity_fn(x, float(t)), float(t), float(t_next))
    return x


@given(steps=st.integers(1, 50), shift=st.floats(0.2, 8.0))
def test_timesteps_run_from_noise_to_data_monotonically(steps, shift):
    t = FlowEulerSampler(FlowEulerConfig(steps=steps, shift=shift)).timesteps()
    assert t.shape == (steps + 1,)
    assert t[0] == 1.0 and t[-1] == 0.0
    assert torch.all(t[1:] < t[:-1])


def test_shift_one_is_uniform_and_shift_above_one_spends_more_steps_at_high_noise():
    uniform = FlowEulerSampler(FlowEulerConfig(steps=4)).timesteps()
    assert torch.allclose(uniform, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    shifted = FlowEulerSampler(FlowEulerConfig(steps=4, shift=3.0)).timesteps()
    assert torch.all(shifted[1:-1] > uniform[1:-1])
    assert torch.isclose(shifted[2], torch.tensor(0.75, dtype=torch.float64))  # 3*0.5/(1+2*0.5)


@given(steps=st.integers(1, 30), shift=st.floats(0.5, 4.0), seed=st.integers(0, 100))
def test_exact_velocity_of_a_straight_path_recovers_the_data(steps, shift, seed):
    """L1: on z_t = (1-t) z0 + t eps the velocity eps - z0 is constant, so Euler is exact."""
    g = torch.Generator().manual_seed(seed)
    z0, eps = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    sampler = FlowEulerSampler(FlowEulerConfig(steps=steps, shift=shift))
    assert torch.allclose(sample(sampler, eps, lambda x, t: eps - z0), z0, atol=1e-12)


def test_error_on_a_curved_field_shrinks_with_more_steps():
    """dz/dt = z has z(0) = z(1) * e^-1; Euler's error is first order in the step."""
    z1 = torch.ones(1, dtype=torch.float64)
    errors = [abs(float(sample(FlowEulerSampler(FlowEulerConfig(steps=n)), z1, lambda x, t: x)) - torch.e ** -1)
              for n in (10, 20, 40)]
    assert errors[0] > errors[1] > errors[2]
    assert 1.8 < errors[0] / errors[1] < 2.2


def test_sigma_min_walks_the_released_flow_match_grid():
    """Golden README Q14 / case e: 3 steps of diffusers' FlowMatchEulerDiscreteScheduler evaluate at
    t = 1, 0.5005, 0.001 and end at 0; the network's timesteps are 1000 t in float32."""
    t = FlowEulerSampler(FlowEulerConfig(steps=3, sigma_min=0.001)).timesteps()
    assert torch.allclose(t, torch.tensor([1.0, 0.5005, 0.001, 0.0], dtype=torch.float64), atol=1e-15)
    assert (t.float() * 1000).tolist() == [1000.0, 500.5000305175781, 1.0, 0.0]
    assert torch.equal(FlowEulerSampler(FlowEulerConfig(steps=4, sigma_min=0.0)).timesteps(),
                       FlowEulerSampler(FlowEulerConfig(steps=4)).timesteps())


@given(steps=st.integers(1, 30), sigma_min=st.floats(1e-4, 0.5), seed=st.integers(0, 100))
def test_the_released_grid_is_still_exact_on_a_straight_path(steps, sigma_min, seed):
    g = torch.Generator().manual_seed(seed)
    z0, eps = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    sampler = FlowEulerSampler(FlowEulerConfig(steps=steps, sigma_min=sigma_min))
    assert sampler.timesteps().shape == (steps + 1,)
    assert torch.allclose(sampler.solve(eps, lambda x, t: eps - z0), z0, atol=1e-12)
