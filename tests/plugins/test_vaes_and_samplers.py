"""Autoencoders (spec A1) and samplers of the rectified-flow ODE (spec L1, I3).

The SD VAE is tested through its real loading paths on a tiny random AutoencoderKL saved to
tmp_path; the samplers on ODEs with known solutions.
"""

from __future__ import annotations

import math

import pytest
import torch

from memo_zoo.errors import MissingWeightsError
from memo_zoo.slots.scheduler import Sampler
from memo_zoo.slots.vae import Autoencoder
from memo_zoo_plugins.scheduler.flow_euler import FlowEulerConfig, FlowEulerSampler
from memo_zoo_plugins.scheduler.flow_heun import FlowHeunConfig, FlowHeunSampler
from memo_zoo_plugins.scheduler.flow_multistep import FlowMultistepConfig, FlowMultistepSampler
from memo_zoo_plugins.vae.pixel import PixelVAE, PixelVAEConfig
from memo_zoo_plugins.vae.sd_vae import SDVAE, SDVAEConfig


def frames(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---- pixel VAE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("patch", [1, 2, 4, 8])
def test_pixel_patches_round_trip_exactly(patch):
    vae = PixelVAE(PixelVAEConfig(patch_size=patch, scaling_factor=0.5))  # a power of 2 scales exactly
    assert isinstance(vae, Autoencoder)
    assert (vae.latent_channels, vae.downsample) == (3 * patch * patch, patch)
    x = frames(2, 64)
    z = vae.encode(x)
    assert z.shape == (2, 3 * patch * patch, 64 // patch, 64 // patch)
    assert torch.equal(vae.decode(z), x)
    assert torch.equal(torch.sort(z.flatten()).values, torch.sort(x.flatten() * 0.5).values), "a permutation"


def test_pixel_patch_keeps_a_block_in_one_latent_position():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 3, 1, 1)
    z = PixelVAE(PixelVAEConfig(patch_size=2)).encode(x)
    assert z[0, :4, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left 2 x 2 block of channel 0
    with pytest.raises(ValueError, match="not divisible by patch_size 2"):
        PixelVAE(PixelVAEConfig(patch_size=2)).encode(torch.zeros(1, 3, 5, 4))


# ---- SD VAE ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                        norm_num_groups=4, sample_size=16, scaling_factor=0.18215).eval()
    root = tmp_path_factory.mktemp("weights")
    vae.save_pretrained(root / "sd-pipeline" / "vae")  # an SD pipeline folder: the VAE in vae/
    save_file(vae.state_dict(), str(root / "vae.safetensors"))
    return vae, root


def test_sd_vae_loads_a_folder_and_scales_the_posterior_mean(tiny_vae):
    reference, root = tiny_vae
    vae = SDVAE(SDVAEConfig(weights=str(root / "sd-pipeline" / "vae")))
    assert isinstance(vae, Autoencoder)
    assert (vae.latent_channels, vae.downsample, vae.scaling_factor) == (4, 2, 0.18215)
    x = frames(2, 16)
    z = vae.encode(x)
    with torch.no_grad():
        expected = reference.encode(x).latent_dist.mean * 0.18215
    assert z.shape == (2, 4, 8, 8) and torch.allclose(z, expected, atol=1e-6)
    assert torch.equal(vae.encode(x), z), "the posterior mean is deterministic"
    with torch.no_grad():
        assert torch.allclose(vae.decode(z), reference.decode(z / 0.18215).sample, atol=1e-6)
    assert not any(p.requires_grad for p in vae.parameters()) and not vae.train().vae.training


def test_sd_vae_pipeline_folder_single_file_and_options(tiny_vae, monkeypatch):
    _, root = tiny_vae
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(root))
    x = frames(1, 16)
    folder = SDVAE(SDVAEConfig(weights="sd-pipeline"))  # a name; its vae/ subfolder is found
    single = SDVAE(SDVAEConfig(weights="vae.safetensors", single_file_config="sd-pipeline"))
    assert torch.allclose(single.encode(x), folder.encode(x), atol=1e-6)
    assert SDVAE(SDVAEConfig(weights="sd-pipeline", scaling_factor=1.0)).scaling_factor == 1.0
    sampled = SDVAE(SDVAEConfig(weights="sd-pipeline", sample=True, slicing=True, tiling=True))
    torch.manual_seed(0)
    assert not torch.equal(sampled.encode(x), sampled.encode(x)), "sample=True draws from the posterior"
    assert sampled.decode(sampled.encode(x)).shape == x.shape


def test_sd_vae_missing_weights_say_what_and_where(tiny_vae, tmp_path):
    _, root = tiny_vae
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "sd15-vae")):
        SDVAE(SDVAEConfig(weights=str(tmp_path / "sd15-vae")))
    with pytest.raises(MissingWeightsError, match="single_file_config"):
        SDVAE(SDVAEConfig(weights=str(root / "vae.safetensors")))
    with pytest.raises(MissingWeightsError, match="no config.json"):
        SDVAE(SDVAEConfig(weights=str(root)))


# ---- samplers -------------------------------------------------------------------------------------

SAMPLERS = [
    pytest.param(lambda steps, shift: FlowEulerSampler(FlowEulerConfig(steps=steps, shift=shift)), 1e-12, id="euler"),
    pytest.param(lambda steps, shift: FlowHeunSampler(FlowHeunConfig(steps=steps, shift=shift)), 1e-12, id="heun"),
    # diffusers starts at sigma = 1 - 1e-6 and keeps float32 sigmas (see flow_multistep's docstring)
    *[pytest.param(lambda steps, shift, o=order: FlowMultistepSampler(FlowMultistepConfig(steps=steps, shift=shift,
                                                                                          order=o)),
                   1e-5, id=f"multistep{order}") for order in (1, 2, 3)],
]


@pytest.mark.parametrize("make, atol", SAMPLERS)
@pytest.mark.parametrize("steps, shift", [(1, 1.0), (4, 3.0), (20, 1.0)])
def test_every_solver_lands_on_the_data_of_a_straight_path(make, atol, steps, shift):
    """L1: z_t = (1 - t) z0 + t eps has the constant velocity eps - z0; from eps every solver reaches z0."""
    g = torch.Generator().manual_seed(steps)
    z0, eps = torch.randn(2, 3, 4, generator=g, dtype=torch.float64), torch.randn(2, 3, 4, generator=g,
                                                                                   dtype=torch.float64)
    sampler = make(steps, shift)
    assert isinstance(sampler, Sampler) and sampler.evaluations_per_step in (1, 2)
    assert torch.equal(sampler.timesteps(), FlowEulerSampler(FlowEulerConfig(steps=steps, shift=shift)).timesteps())
    assert torch.allclose(sampler.solve(eps, lambda z, t: eps - z0), z0, atol=atol)
    x = eps  # and through step(), the interface every host can use
    times = sampler.timesteps()
    for t, t_next in zip(times[:-1], times[1:]):
        x = sampler.step(x, eps - z0, float(t), float(t_next))
    assert torch.allclose(x, z0, atol=atol)


def growth_error(sampler) -> float:
    """dz/dt = z from z(1) = 1: z(0) = e^-1."""
    return abs(float(sampler.solve(torch.ones(1, 1, dtype=torch.float64), lambda z, t: z)) - math.exp(-1))


def test_heun_is_second_order_and_costs_two_evaluations_but_the_last():
    errors = [growth_error(FlowHeunSampler(FlowHeunConfig(steps=n))) for n in (10, 20, 40)]
    assert 3.5 < errors[0] / errors[1] < 4.5 and 3.5 < errors[1] / errors[2] < 4.5
    calls = []
    FlowHeunSampler(FlowHeunConfig(steps=5)).solve(torch.ones(1), lambda z, t: calls.append(t) or z)
    assert len(calls) == 2 * 5 - 1 and 0.0 not in calls, "the last step is Euler: no evaluation at t = 0"


def test_multistep_convention_matches_euler_at_order_one_and_beats_it_at_order_two():
    """UniP of order 1 in data-prediction form is exactly Euler on the flow ODE: the sign check."""
    euler = [growth_error(FlowEulerSampler(FlowEulerConfig(steps=n))) for n in (20, 40)]
    first = growth_error(FlowMultistepSampler(FlowMultistepConfig(steps=20, order=1, corrector=False)))
    assert first == pytest.approx(euler[0], abs=1e-5)
    second = [growth_error(FlowMultistepSampler(FlowMultistepConfig(steps=n, order=2))) for n in (40, 80)]
    assert second[0] < euler[1] / 10
    assert second[0] / second[1] > 3, "close to second order"


def test_multistep_restarts_at_noise_and_refuses_steps_off_its_grid():
    sampler = FlowMultistepSampler(FlowMultistepConfig(steps=4))
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    field = lambda x, t: x * (1 + t)  # noqa: E731 - a curved field, so history matters
    first = sampler.solve(z, field)
    assert torch.equal(sampler.solve(z, field), first), "a new trajectory at t = 1 forgets the old one"
    sampler.step(z, z, 1.0, 0.75)
    with pytest.raises(ValueError, match="expected t = 0.75, t_next = 0.5"):
        sampler.step(z, z, 0.5, 0.25)
