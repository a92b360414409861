"""One training step (spec L2, L3, L5, L6, T5, §10) on a very small MEMO network, and checkpoints.

Batches are built here as ``memo_zoo.data.samples.collate`` lays them out (32 px frames through
the pixel VAE with patch 8 -> 192 x 4 x 4 latents), so no video is decoded.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from memo_zoo.errors import MemoZooError
from memo_zoo.model.memo_net import build_memo_net
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.components import slot_factories
from memo_zoo.train.checkpoint import TrainerState, list_checkpoints, load_checkpoint, save_checkpoint
from memo_zoo.train.config import ConditionDropoutConfig, TimestepConfig
from memo_zoo.train.loss import noisy_latents, velocity_loss
from memo_zoo.train.regions import LossRegion, region_weight_map
from memo_zoo.train.step import (TrainModules, apply_phase, check_parts, draw, motion_counts, new_module_parameters,
                                 padded_waveform, prepare_inputs, robust_objective)
from memo_zoo_plugins.audio_encoder.log_mel import LogMelConfig
from memo_zoo_plugins.audio_encoder.log_mel import build as build_log_mel
from memo_zoo_plugins.image_encoder.conv import ConvImageEncoderConfig
from memo_zoo_plugins.image_encoder.conv import build as build_conv
from memo_zoo_plugins.vae.pixel import PixelVAEConfig
from memo_zoo_plugins.vae.pixel import build as build_pixel

REGISTRY = load_registry(disabled=())
FACTORIES = slot_factories(REGISTRY)
NETWORK = {"block_out_channels": (16, 32), "attention_head_dim": 2, "cross_attention_dim": 16,
           "latent_channels": 192, "audio_tokens": 4, "audio_dim": 8, "image_tokens": 2, "image_embed_dim": 8}
SIZE, FPS, WINDOW, P = 32, 25.0, 1, 640
NO_EMOTION = 8
NO_DROPOUT = ConditionDropoutConfig(emotion=0, reference=0, audio=0, motion=0)
ALL_DROPPED = ConditionDropoutConfig(emotion=1, reference=1, audio=1, motion=1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_modules(seed: int = 0) -> TrainModules:
    torch.manual_seed(seed)
    net = build_memo_net(NETWORK, FACTORIES("temporal", {"kind": "linear_memory", "heads": 2}),
                         FACTORIES("audio_fusion", {"kind": "multimodal_attention", "heads": 2}))
    audio = build_log_mel(LogMelConfig(token_count=4, token_dim=8, hidden=16, n_mels=16, window=WINDOW))
    image = build_conv(ConvImageEncoderConfig(embed_dim=8, channels=(8,)))
    modules = TrainModules(net, image, audio, FPS, WINDOW)
    # Move the zero-initialised output projections (A6) off zero so every path matters.
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in new_module_parameters(modules):
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return modules


VAE = build_pixel(PixelVAEConfig(patch_size=8))


def make_batch(seed: int = 0, batch: int = 2, frames: int = 3, motion: int = 4,
               mask: list[list[bool]] | None = None) -> dict:
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.rand(*shape, generator=g) * 2 - 1  # noqa: E731
    motion_mask = torch.tensor(mask) if mask is not None else torch.ones(batch, motion, dtype=torch.bool)
    return {"reference": r(batch, 3, SIZE, SIZE), "target": r(batch, frames, 3, SIZE, SIZE),
            "motion": r(batch, motion, 3, SIZE, SIZE), "motion_mask": motion_mask,
            "audio": 0.3 * r(batch, frames, 2 * WINDOW + 1, P), "emotion": torch.arange(batch) % 8}


def inputs_for(batch: dict, seed: int = 0, dropout=NO_DROPOUT, single_frame: bool = False,
               motion_padding: str = "drop", loss_regions=None, motion_augment=None, colour_augment=None) -> dict:
    return prepare_inputs(batch, VAE, torch.Generator().manual_seed(seed), single_frame=single_frame,
                          use_audio=not single_frame, timesteps=TimestepConfig(), dropout=dropout,
                          motion_padding=motion_padding, audio_window=WINDOW, no_emotion=NO_EMOTION,
                          device=torch.device("cpu"), loss_regions=loss_regions, motion_augment=motion_augment,
                          colour_augment=colour_augment)


# ---- audio ---------------------------------------------------------------------------------------

def test_padded_waveform_rebuilds_the_track_under_the_windows():
    """The windows of samples.py (frame i, window w = audio of frame i + w - window) give back the
    contiguous track from `window` frames before the clip to `window` after it."""
    frames, window, p = 5, 2, 7
    track = torch.arange(100 * p, dtype=torch.float32)
    start = 10
    ids = start + np.arange(frames)[:, None] + np.arange(-window, window + 1)[None, :]
    windows = track[torch.from_numpy(ids * p)[..., None] + torch.arange(p)]  # (F, W, P)
    rebuilt = padded_waveform(windows.unsqueeze(0).repeat(2, 1, 1, 1), window)
    expected = track[(start - window) * p:(start + frames + window) * p]
    assert rebuilt.shape == (2, (frames + 2 * window) * p)
    assert torch.equal(rebuilt[1], expected)
    with pytest.raises(ValueError, match="audio windows"):
        padded_waveform(windows.unsqueeze(0), window + 1)


# ---- condition dropout (L6) -------------------------------------------------------------------

def test_each_condition_is_dropped_independently_at_its_rate():
    n = 40_000
    draws = draw(torch.Generator().manual_seed(0), (n, 1, 1, 1, 1), TimestepConfig(),
                 ConditionDropoutConfig(emotion=0.05, reference=0.05, audio=0.05, motion=0.2))
    dropped = {name: ~keep for name, keep in draws.keep.items()}
    for name, rate in (("emotion", 0.05), ("reference", 0.05), ("audio", 0.05), ("motion", 0.2)):
        assert abs(float(dropped[name].float().mean()) - rate) < 0.006, name
    both = float((dropped["emotion"] & dropped["audio"]).float().mean())
    assert abs(both - 0.05 * 0.05) < 0.0015  # independent draws
    assert draws.t.shape == (n,) and ((draws.t > 0) & (draws.t < 1)).all()
    again = draw(torch.Generator().manual_seed(0), (n, 1, 1, 1, 1), TimestepConfig(),
                 ConditionDropoutConfig(emotion=0.05, reference=0.05, audio=0.05, motion=0.2))
    assert all(torch.equal(again.keep[k], draws.keep[k]) for k in draws.keep) and torch.equal(again.t, draws.t)


def test_dropping_every_condition_trains_the_unconditional_branch_of_spec_10():
    """No face embedding (zeros), zero audio, 'no emotion', reference attention off, empty memory."""
    modules = make_modules()
    batch = make_batch(1)
    inputs = inputs_for(batch, seed=3, dropout=ALL_DROPPED)
    assert (inputs["emotion"] == NO_EMOTION).all() and (inputs["motion_count"] == 0).all()
    assert not inputs["keep_reference"].any() and not inputs["keep_audio"].any()
    with torch.no_grad():
        losses = modules(inputs)
        net = modules.net
        tokens = net.project_image(torch.zeros(2, 8))
        reference = net.encode_reference(inputs["reference_latents"], tokens)
        z_t = noisy_latents(inputs["z0"], inputs["noise"], inputs["t"])
        velocity = net(z_t, inputs["t"], tokens, None, torch.full((2,), NO_EMOTION), None, None)
        expected = velocity_loss(velocity, inputs["z0"], inputs["noise"])
        # With reference_mask all False, the reference is read by no one: same as no reference.
        masked = net(z_t, inputs["t"], tokens, None, torch.full((2,), NO_EMOTION), reference, None,
                     torch.zeros(2, dtype=torch.bool))
    torch.testing.assert_close(losses, expected)
    torch.testing.assert_close(velocity, masked)
    conditioned = inputs_for(batch, seed=3)
    with torch.no_grad():
        assert not torch.allclose(modules(conditioned), losses)


# ---- robust training (L5) ----------------------------------------------------------------------

@pytest.mark.parametrize("single_frame", [False, True])
def test_loss_regions_weight_the_step_loss_on_the_latent_grid(single_frame):
    """task.train.loss_regions: the step's per-sample loss is the region-weighted velocity MSE (L1)."""
    modules = make_modules()
    batch = make_batch(2)
    mouth = [LossRegion(name="mouth", box=(0.25, 0.5, 0.75, 0.75), weight=3.0)]
    plain = inputs_for(batch, seed=4, single_frame=single_frame)
    weighted = inputs_for(batch, seed=4, single_frame=single_frame, loss_regions=mouth)
    assert plain["loss_weights"] is None
    torch.testing.assert_close(weighted["loss_weights"], region_weight_map(mouth, 4, 4))
    with torch.no_grad():
        losses = modules(weighted)
        # The same draws and forward: only the reduction differs. Undo it cell by cell.
        net, x = modules.net, weighted
        tokens = net.project_image(modules.image_encoder.encode(x["reference_images"]))
        reference = net.encode_reference(x["reference_latents"], tokens).hidden_states
        z_t = noisy_latents(x["z0"], x["noise"], x["t"])
        if single_frame:
            velocity = net(z_t, x["t"], tokens, None, None, reference, None)
        else:
            audio = modules.audio_encoder.encode(x["waveform"], x["num_frames"], FPS, WINDOW)
            state = net.motion_state(x["motion_latents"], tokens)
            velocity = net(z_t, x["t"], tokens, audio, x["emotion"], reference, state)
        velocity_error = (velocity - (x["noise"] - x["z0"])) ** 2
        expected = (velocity_error * x["loss_weights"]).flatten(1).mean(1)
    torch.testing.assert_close(losses, expected)
    with torch.no_grad():
        assert not torch.allclose(modules(plain), losses)


def test_robust_filter_drops_only_the_outliers_and_counts_them():
    weight = torch.ones(4, requires_grad=True)
    losses = weight * torch.tensor([0.05, 0.5, 0.02, 0.3])
    objective, keep = robust_objective(losses, 0.1)
    assert keep.tolist() == [True, False, True, False] and int((~keep).sum()) == 2
    torch.testing.assert_close(objective, torch.tensor(0.035))
    objective.backward()
    assert weight.grad.tolist() == pytest.approx([0.025, 0.0, 0.01, 0.0])  # outliers get no gradient
    none_kept, keep = robust_objective(weight * 1.0, 0.01)
    assert not keep.any() and float(none_kept.detach()) == 0.0
    everything, keep = robust_objective(losses.detach(), None)
    assert keep.all() and float(everything) == pytest.approx(0.2175)


# ---- motion frames (T5) ---------------------------------------------------------------------------

def test_padding_frames_never_reach_the_memory():
    modules = make_modules()
    mask = [[False, False, True, True], [True, True, True, True]]
    batch = make_batch(2, mask=mask)
    base = inputs_for(batch)
    assert base["motion_count"].tolist() == [2, 4]
    with torch.no_grad():
        losses = modules(base)
        padding_changed = copy.deepcopy(batch)
        padding_changed["motion"][0, :2] = -padding_changed["motion"][0, :2]
        real_changed = copy.deepcopy(batch)
        real_changed["motion"][0, 3] = -real_changed["motion"][0, 3]
        assert torch.equal(modules(inputs_for(padding_changed)), losses)
        assert not torch.equal(modules(inputs_for(real_changed))[0], losses[0])
        # Sample 0 alone, with a memory built from its two real frames, gives the same loss.
        net, x = modules.net, base
        tokens = net.project_image(modules.image_encoder.encode(x["reference_images"][:1]))
        reference = net.encode_reference(x["reference_latents"][:1], tokens)
        state = net.motion_state(x["motion_latents"][:1, 2:], tokens)
        audio = modules.audio_encoder.encode(x["waveform"][:1], 3, FPS, WINDOW)
        z_t = noisy_latents(x["z0"], x["noise"], x["t"])[:1]
        alone = velocity_loss(net(z_t, x["t"][:1], tokens, audio, x["emotion"][:1], reference, state),
                              x["z0"][:1], x["noise"][:1])
    torch.testing.assert_close(alone, losses[:1], rtol=1e-5, atol=1e-6)
    # 'keep' feeds the padding too (spec §10's reference-padded first clip).
    kept = inputs_for(batch, motion_padding="keep")
    assert kept["motion_count"].tolist() == [4, 4]
    with torch.no_grad():
        assert not torch.equal(modules(inputs_for(padding_changed, motion_padding="keep"))[0], modules(kept)[0])


def test_motion_mask_must_mark_the_newest_frames():
    assert motion_counts(torch.tensor([[False, True, True], [False, False, False]]), "drop").tolist() == [2, 0]
    with pytest.raises(ValueError, match="suffix"):
        motion_counts(torch.tensor([[True, False, True]]), "drop")


# ---- phases (L2, L3) -------------------------------------------------------------------------------

def _groups(modules: TrainModules) -> dict[str, set[int]]:
    new = {id(p) for block in modules.net.diffusion_net.blocks for m in (block.audio, block.temporal)
           for p in m.parameters()}
    encoders = {id(p) for e in (modules.audio_encoder, modules.image_encoder) for p in e.parameters()}
    spatial = {id(p) for p in modules.net.parameters()} - new
    return {"new_modules": new, "encoders": encoders, "spatial": spatial,
            "image_proj": {id(p) for p in modules.net.image_proj.parameters()},
            "reference_net": {id(p) for p in modules.net.reference_net.parameters()}}


@pytest.mark.parametrize("trainable, trains", [
    ("spatial", {"spatial", "image_proj", "reference_net"}),
    ("new", {"new_modules", "encoders"}),
    ("all", {"spatial", "image_proj", "reference_net", "new_modules", "encoders"}),
])
def test_a_phase_trains_its_modules_and_leaves_the_rest_untouched(trainable, trains):
    modules = make_modules()
    allowed = list(modules.parameters())
    apply_phase(modules, trainable, allowed)
    groups = _groups(modules)
    by_id = {id(p): p for p in modules.parameters()}
    for name, ids in groups.items():
        flags = {by_id[i].requires_grad for i in ids}
        assert flags == {name in trains}, (name, flags)
    before = {i: p.detach().clone() for i, p in by_id.items()}
    optimizer = torch.optim.AdamW([p for p in allowed], lr=1e-3, weight_decay=0.1)
    inputs = inputs_for(make_batch(4), single_frame=trainable == "spatial")
    if trainable == "spatial":
        # Stage 1 (L2): single frames, no audio, no emotion, no memory.
        assert inputs["z0"].shape[1] == 1 and inputs["waveform"] is None and inputs["emotion"] is None
        assert (inputs["motion_count"] == 0).all()
    modules(inputs).mean().backward()
    optimizer.step()
    changed = {i for i, p in by_id.items() if not torch.equal(p, before[i])}
    for name, ids in groups.items():
        if name in trains:
            assert ids & changed, f"{name} did not train in phase {trainable}"
        else:
            assert not ids & changed, f"{name} changed in phase {trainable}"


def test_a_frozen_backbone_stays_frozen_and_frozen_modules_run_in_eval_mode():
    modules = make_modules()
    backbone = modules.image_encoder.features
    backbone.requires_grad_(False)
    allowed = [p for p in modules.parameters() if p.requires_grad]
    apply_phase(modules, "all", allowed)
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not backbone.training and modules.image_encoder.head.training
    apply_phase(modules, "new", allowed)
    assert not modules.net.reference_net.training and modules.net.diffusion_net.blocks[0].audio.training


# ---- parts that do not fit --------------------------------------------------------------------------

def test_a_vae_whose_latent_channels_differ_from_the_network_is_a_clear_error():
    modules = make_modules()
    with pytest.raises(MemoZooError, match=r"latent channels.*latent_channels is 192.*set model.network"):
        check_parts(modules.net, build_pixel(PixelVAEConfig(patch_size=4)), modules.image_encoder,
                    modules.audio_encoder, SIZE, 8, None)
    with pytest.raises(MemoZooError, match="multiple of 2"):
        check_parts(modules.net, VAE, modules.image_encoder, modules.audio_encoder, 40, 8, None)
    check_parts(modules.net, VAE, modules.image_encoder, modules.audio_encoder, SIZE, 8, None)


# ---- checkpoints ---------------------------------------------------------------------------------

def test_checkpoints_are_atomic_pruned_and_restore_weights_optimizer_and_rng(tmp_path):
    modules = make_modules(1)
    names = {n for n, p in modules.named_parameters()}
    optimizer = torch.optim.AdamW(modules.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    modules(inputs_for(make_batch(5))).mean().backward()
    optimizer.step()
    scheduler.step()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, TrainerState(step=step, epoch=0, batch_in_epoch=step), modules, names, optimizer,
                        scheduler, None, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]

    class Broken:  # the optimizer state fails to serialise half-way through a save
        def state_dict(self):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, TrainerState(step=4), modules, names, Broken(), scheduler, None, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000002", "checkpoint-00000003"]

    rng = torch.get_rng_state()
    saved = {k: v.detach().clone() for k, v in modules.state_dict().items()}
    torch.manual_seed(123)  # move the global RNG on
    fresh = make_modules(7)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    fresh_scheduler = torch.optim.lr_scheduler.LambdaLR(fresh_optimizer, lambda step: 1.0)
    state = load_checkpoint(tmp_path / "checkpoint-00000003", fresh, names, fresh_optimizer, fresh_scheduler, None)
    assert (state.step, state.batch_in_epoch) == (3, 3)
    assert all(torch.equal(saved[k], v) for k, v in fresh.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert fresh_scheduler.last_epoch == 1
    moments = [s["exp_avg"] for s in optimizer.state_dict()["state"].values()]
    loaded = [s["exp_avg"] for s in fresh_optimizer.state_dict()["state"].values()]
    assert len(moments) == len(loaded) > 0 and all(torch.equal(a, b) for a, b in zip(moments, loaded))


def test_one_forward_over_merged_memories_gives_the_loss_and_gradients_of_a_forward_per_group():
    """Samples with 0, 2 and 4 motion frames (T5) and a dropped reference (L6): the linear memories
    of each count, merged, then one Diffusion Net call, equal one call per count, gradients too."""
    modules = make_modules()
    mask = [[False, False, True, True], [True, True, True, True], [False, False, True, True]]
    batch = make_batch(3, batch=3, mask=mask)
    inputs = inputs_for(batch)
    inputs["motion_count"] = torch.tensor([2, 4, 0])  # sample 2's motion dropped
    inputs["keep_reference"] = torch.tensor([True, False, True])
    merges = []
    original = modules.net.merge_states
    modules.net.merge_states = lambda parts, b: merges.append(len(parts)) or original(parts, b)
    results = {}
    for merged in (True, False):
        modules.merge_groups = merged
        modules.zero_grad()
        losses = modules(inputs)
        losses.sum().backward()
        results[merged] = losses.detach(), [p.grad.clone() for p in modules.parameters() if p.grad is not None]
    assert merges == [3]  # the merged path ran, once, over the three groups
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-5, atol=1e-6)
    assert len(results[True][1]) == len(results[False][1])
    for merged_grad, grouped_grad in zip(results[True][1], results[False][1]):
        torch.testing.assert_close(merged_grad, grouped_grad, rtol=1e-4, atol=1e-6)


def test_temporal_modules_that_cannot_merge_memories_run_a_forward_per_group():
    torch.manual_seed(0)
    net = build_memo_net(NETWORK, FACTORIES("temporal", {"kind": "self_attention", "motion_frames": 4, "heads": 2}),
                         FACTORIES("audio_fusion", {"kind": "multimodal_attention", "heads": 2}))
    assert net.merge_states([(torch.tensor([0]), net.new_state(1))], 1) is None
    modules = TrainModules(net, build_conv(ConvImageEncoderConfig(embed_dim=8, channels=(8,))),
                           build_log_mel(LogMelConfig(token_count=4, token_dim=8, hidden=16, n_mels=16,
                                                      window=WINDOW)), FPS, WINDOW)
    inputs = inputs_for(make_batch(4, batch=2, mask=[[False, False, True, True], [True, True, True, True]]))
    with torch.no_grad():
        losses = modules(inputs)
    assert losses.shape == (2,) and torch.isfinite(losses).all()
