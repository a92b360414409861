"""Per-sample colour shift of a training sample's frames (memo_zoo.train.colour_augment; spec L2,
T5, T6): the transform against a pixel-by-pixel reference, its draws, and its place in a step."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo.train.colour_augment import ColourAugmentConfig, ColourTransform, draw_colour
from memo_zoo.train.config import TrainConfig
from tests.unit.test_train_step import VAE, inputs_for, make_batch


def reference_recolour(frames: torch.Tensor, gain: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """clip(g x + o, -1, 1) one pixel at a time; frames (B, N, 3, H, W)."""
    out = frames.clone()
    b, n, _, h, w = frames.shape
    for i in range(b):
        for j in range(n):
            for c in range(3):
                for y in range(h):
                    for x in range(w):
                        v = float(frames[i, j, c, y, x]) * float(gain[i, c]) + float(offset[i, c])
                        out[i, j, c, y, x] = min(1.0, max(-1.0, v))
    return out


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), n=st.integers(1, 3), h=st.integers(1, 5), w=st.integers(1, 5),
       shift=st.sampled_from([0.0, 0.25, 1.0]), gain=st.sampled_from([0.0, 0.3, 0.9]), seed=st.integers(0, 2**31))
def test_the_transform_equals_the_pixel_by_pixel_formula(b, n, h, w, shift, gain, seed):
    frames = torch.rand(b, n, 3, h, w, generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1
    config = ColourAugmentConfig(shift=shift, gain=gain)
    drawn = draw_colour(b, config, torch.Generator().manual_seed(seed))
    if not config.enabled:
        assert drawn is None
        return
    sample, motion = drawn
    assert motion is sample  # 'same'
    # Draw order: gains, then offsets, each U(-1, 1) scaled; a part that is off draws nothing.
    g = torch.Generator().manual_seed(seed)
    gains = 1 + (2 * torch.rand(b, 3, generator=g) - 1) * gain if gain > 0 else torch.ones(b, 3)
    offsets = (2 * torch.rand(b, 3, generator=g) - 1) * shift if shift > 0 else torch.zeros(b, 3)
    torch.testing.assert_close(sample.gain, gains, rtol=0, atol=0)
    torch.testing.assert_close(sample.offset, offsets, rtol=0, atol=0)
    out = sample.apply(frames)
    torch.testing.assert_close(out, reference_recolour(frames, gains, offsets), rtol=0, atol=1e-6)
    # A frame without the N axis (the reference image) gets its sample's transform too.
    torch.testing.assert_close(sample.apply(frames[:, 0]), out[:, 0], rtol=0, atol=0)


def test_gains_and_offsets_are_uniform_per_sample_and_channel():
    drawn = draw_colour(20_000, ColourAugmentConfig(shift=0.25, gain=0.2), torch.Generator().manual_seed(0))
    assert drawn is not None
    t = drawn[0]
    assert float(t.offset.abs().max()) <= 0.25 and float((t.gain - 1).abs().max()) <= 0.2
    # U(-a, a): mean 0, variance a^2 / 3; the channels independent.
    assert abs(float(t.offset.mean())) < 0.005 and abs(float(t.offset.var()) - 0.25**2 / 3) < 0.001
    assert abs(float(t.gain.mean()) - 1) < 0.005 and abs(float(t.gain.var()) - 0.2**2 / 3) < 0.001
    assert abs(float(torch.corrcoef(t.offset.T)[0, 1])) < 0.03


def test_own_mode_draws_the_motion_frames_a_second_transform():
    g = torch.Generator().manual_seed(3)
    sample, motion = draw_colour(4, ColourAugmentConfig(shift=0.25, motion="own"), g)
    assert not torch.equal(sample.offset, motion.offset)
    again = torch.Generator().manual_seed(3)
    first = draw_colour(4, ColourAugmentConfig(shift=0.25), again)[0]
    assert torch.equal(first.offset, sample.offset)  # the sample's transform is drawn first, as in 'same'


def test_off_draws_nothing():
    g = torch.Generator().manual_seed(5)
    before = g.get_state()
    assert draw_colour(3, ColourAugmentConfig(motion="own"), g) is None
    assert torch.equal(g.get_state(), before)


def test_frames_of_another_batch_or_without_channels_are_refused():
    t = ColourTransform(gain=torch.ones(2, 3), offset=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"B=2"):
        t.apply(torch.zeros(3, 3, 4, 4))
    with pytest.raises(ValueError, match=r"3, H, W"):
        t.apply(torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("field,value", [("shift", 1.5), ("shift", -0.1), ("gain", 1.0), ("motion", "other")])
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ValidationError, match=field):
        TrainConfig.model_validate({"colour_augment": {field: value}})


def _colours(seed: int, config: ColourAugmentConfig, batch: int):
    return draw_colour(batch, config, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["same", "own"])
def test_a_step_recolours_reference_target_and_motion_frames(mode):
    batch = make_batch(batch=3)
    config = ColourAugmentConfig(shift=0.3, gain=0.2, motion=mode)
    on = inputs_for(batch, seed=4, colour_augment=config)
    sample, motion = _colours(4, config, 3)
    torch.testing.assert_close(on["reference_images"], sample.apply(batch["reference"]))
    torch.testing.assert_close(on["reference_latents"], VAE.encode(sample.apply(batch["reference"])))
    target = sample.apply(batch["target"])
    torch.testing.assert_close(on["z0"], VAE.encode(target.flatten(0, 1)).reshape(on["z0"].shape))
    moved = motion.apply(batch["motion"])
    torch.testing.assert_close(on["motion_latents"],
                               VAE.encode(moved.flatten(0, 1)).reshape(on["motion_latents"].shape))
    assert (mode == "same") == torch.equal(sample.offset, motion.offset)
    # Audio and emotion are not frames: untouched.
    plain = inputs_for(batch, seed=4)
    assert torch.equal(on["waveform"], plain["waveform"]) and torch.equal(on["emotion"], plain["emotion"])


def test_off_leaves_a_step_and_its_draws_as_they_were():
    batch = make_batch()
    plain = inputs_for(batch)
    off = inputs_for(batch, colour_augment=ColourAugmentConfig(motion="own"))
    for name in ("z0", "noise", "t", "reference_images", "reference_latents", "motion_latents", "emotion"):
        assert torch.equal(plain[name], off[name]), name


def test_the_spatial_phase_recolours_its_reference_and_single_target_frame():
    """Stage 1 (L2): reference frame -> another frame, both in the sample's new colours."""
    batch = make_batch(batch=2)
    config = ColourAugmentConfig(shift=0.3)
    on = inputs_for(batch, seed=2, single_frame=True, colour_augment=config)
    sample, _ = _colours(2, config, 2)
    torch.testing.assert_close(on["reference_images"], sample.apply(batch["reference"]))
    torch.testing.assert_close(on["z0"], VAE.encode(sample.apply(batch["target"][:, 0])).unsqueeze(1))
    assert on["motion_latents"] is None
