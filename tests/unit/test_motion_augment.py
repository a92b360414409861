"""Patch drop and Gaussian noise on the motion frames in training (memo_zoo.train.motion_augment;
spec T5, T6): the fast form against a cell-by-cell reference, its draws, and its place in a step."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo.train.config import TrainConfig
from memo_zoo.train.motion_augment import MotionAugmentConfig, augment_motion
from tests.unit.test_train_step import NO_DROPOUT, inputs_for, make_batch


def reference_augment(latents: torch.Tensor, config: MotionAugmentConfig, seed: int) -> torch.Tensor:
    """The module docstring's formula, one cell at a time, from the same draws in the same order."""
    g = torch.Generator().manual_seed(seed)
    b, m, c, h, w = latents.shape
    out = latents.clone()
    if config.patch_drop > 0:
        p = config.patch_size
        u = torch.rand(b, m, 1, -(-h // p), -(-w // p), generator=g)
        for i in range(b):
            for j in range(m):
                for y in range(h):
                    for x in range(w):
                        if u[i, j, 0, y // p, x // p] < config.patch_drop:
                            out[i, j, :, y, x] = 0.0
    if config.noise_std > 0:
        sigma = torch.rand(b, generator=g) * config.noise_std
        eps = torch.randn(latents.shape, generator=g)
        for i in range(b):
            out[i] += sigma[i] * eps[i]
    return out


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), m=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       patch=st.integers(1, 4), drop=st.sampled_from([0.0, 0.3, 0.9]), noise=st.sampled_from([0.0, 0.5, 2.0]),
       seed=st.integers(0, 2**31))
def test_augmentation_equals_the_cell_by_cell_formula(b, m, h, w, patch, drop, noise, seed):
    latents = torch.randn(b, m, 2, h, w, generator=torch.Generator().manual_seed(seed + 1))
    config = MotionAugmentConfig(patch_drop=drop, patch_size=patch, noise_std=noise)
    fast = augment_motion(latents, config, torch.Generator().manual_seed(seed))
    assert fast.shape == latents.shape
    torch.testing.assert_close(fast, reference_augment(latents, config, seed), rtol=0, atol=1e-6)


def test_off_returns_the_latents_and_draws_nothing():
    latents = torch.randn(2, 3, 4, 8, 8)
    g = torch.Generator().manual_seed(5)
    before = g.get_state()
    assert augment_motion(latents, MotionAugmentConfig(), g) is latents
    assert torch.equal(g.get_state(), before)


def test_patches_drop_whole_at_their_rate_across_channels():
    latents = torch.ones(64, 4, 3, 8, 8)
    out = augment_motion(latents, MotionAugmentConfig(patch_drop=0.25, patch_size=2), torch.Generator().manual_seed(0))
    kept = out[:, :, 0]
    # Every channel of a cell shares its fate, and every 2 x 2 patch is all kept or all dropped.
    assert torch.equal(out, kept.unsqueeze(2).expand_as(out))
    blocks = kept.reshape(64, 4, 4, 2, 4, 2)
    assert torch.equal(blocks.amin(dim=(3, 5)), blocks.amax(dim=(3, 5)))
    rate = 1 - float(blocks.amin(dim=(3, 5)).mean())
    # 4096 patches at p = 0.25: the binomial's standard deviation is 0.0068.
    assert abs(rate - 0.25) < 0.03


def test_noise_levels_are_per_sample_and_bounded_by_noise_std():
    latents = torch.zeros(256, 2, 4, 8, 8)
    out = augment_motion(latents, MotionAugmentConfig(noise_std=0.8), torch.Generator().manual_seed(0))
    per_sample = out.flatten(1).std(dim=1)
    assert float(per_sample.max()) < 0.8 * 1.15
    assert float(per_sample.min()) < 0.1
    # sigma ~ U(0, 0.8): mean 0.4.
    assert abs(float(per_sample.mean()) - 0.4) < 0.05


@pytest.mark.parametrize("field, value", [("patch_drop", 1.0), ("patch_drop", -0.1), ("patch_size", 0),
                                          ("noise_std", -1.0)])
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ValidationError, match=field):
        TrainConfig.model_validate({"motion_augment": {field: value}})


def test_a_step_corrupts_only_the_motion_latents_and_keeps_every_other_draw():
    batch = make_batch(mask=[[False, True, True, True], [True, True, True, True]])
    plain = inputs_for(batch)
    off = inputs_for(batch, motion_augment=MotionAugmentConfig())
    on = inputs_for(batch, motion_augment=MotionAugmentConfig(patch_drop=0.5, noise_std=0.5))
    for name in ("z0", "noise", "t", "reference_latents", "motion_count", "emotion", "waveform"):
        assert torch.equal(plain[name], off[name]) and torch.equal(plain[name], on[name]), name
    assert torch.equal(plain["motion_latents"], off["motion_latents"])
    # The real frames are corrupted; the one padding slot stays unused (motion_count 3 reads the newest 3).
    assert on["motion_count"].tolist() == [3, 4]
    assert not torch.allclose(on["motion_latents"][:, 1:], plain["motion_latents"][:, 1:])


def test_the_dropout_of_the_whole_memory_still_applies():
    batch = make_batch()
    dropped = inputs_for(batch, dropout=NO_DROPOUT.model_copy(update={"motion": 1.0}),
                         motion_augment=MotionAugmentConfig(patch_drop=0.5, noise_std=0.5))
    assert dropped["motion_latents"] is None and dropped["motion_count"].tolist() == [0, 0]
