"""Registry-wide contract tests: every registered component of every slot, third-party ones too.

What each slot promises is written on its hook (memo_zoo/plugin/hookspecs.py); this file checks
it for whatever the registry holds, with each component's default options.
"""

from __future__ import annotations

import copy

import pytest
import torch

from memo_zoo.model.slots import AudioEncoder, Autoencoder, ImageEncoder, Sampler
from memo_zoo.plugin.manager import load_registry
from memo_zoo.plugin.slots import SLOT_BY_NAME, SLOTS

REGISTRY = load_registry(disabled=())


def components(slot: str):
    return [pytest.param(kind, entry, id=f"{slot}:{kind}") for kind, entry in sorted(REGISTRY.components[slot].items())]


ALL = [pytest.param(slot.name, kind, entry, id=f"{slot.name}:{kind}")
       for slot in SLOTS for kind, entry in sorted(REGISTRY.components[slot.name].items())]


def build(slot: str, entry, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = entry.spec.config(**overrides)
    return entry.spec.factory(config, **SLOT_BY_NAME[slot].smoke_build_args)


def perturb(module: torch.nn.Module, seed: int = 1) -> None:
    """Move zero-initialised output layers off zero so that the function is no longer the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("slot, kind, entry", ALL)
def test_component_is_documented_and_buildable_with_defaults(slot, kind, entry):
    assert entry.spec.summary.strip(), "summary is shown by `memo-zoo ls`"
    for name, field in entry.spec.config.model_fields.items():
        assert field.description, f"option {name!r} of {kind!r} needs a description (shown by `memo-zoo ls`)"
    entry.spec.config.model_json_schema()
    if not _required_options(entry):
        assert build(slot, entry) is not None


def _required_options(entry) -> list[str]:
    """Options without a default (a dataset's root, a task's output folder) need a real value."""
    return [name for name, field in entry.spec.config.model_fields.items() if field.is_required()]


# ---- temporal (spec §2) -------------------------------------------------------------------------

C = SLOT_BY_NAME["temporal"].smoke_build_args["channels"]


def clip(seed: int, frames: int = 5, batch: int = 2, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, C, 3, 4, generator=g).to(dtype)


@pytest.mark.parametrize("kind, entry", components("temporal"))
def test_temporal_is_the_identity_at_init_with_and_without_memory(kind, entry):
    module = build("temporal", entry)
    x, motion = clip(0), clip(1, frames=6)
    ctx = module.new_context(2)
    assert torch.equal(module(x, ctx), x)
    assert torch.equal(module(x, module.update_context(ctx, motion)), x)


@pytest.mark.parametrize("kind, entry", components("temporal"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_temporal_keeps_shape_and_dtype(kind, entry, dtype):
    module = build("temporal", entry).to(dtype)
    perturb(module)
    x = clip(0, dtype=dtype)
    ctx = module.update_context(module.new_context(2), clip(1, frames=3, dtype=dtype))
    out = module(x, ctx)
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize("kind, entry", components("temporal"))
def test_temporal_gradients_reach_every_parameter(kind, entry):
    module = build("temporal", entry)
    perturb(module)
    x = clip(0).requires_grad_()
    ctx = module.update_context(module.new_context(2), clip(1, frames=3))
    module(x, ctx).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("kind, entry", components("temporal"))
def test_temporal_state_dict_round_trip_and_seeded_determinism(kind, entry):
    first = build("temporal", entry, seed=3)
    perturb(first)
    second = build("temporal", entry, seed=99)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    x, motion = clip(0), clip(1, frames=4)
    out1 = first(x, first.update_context(first.new_context(2), motion))
    out2 = second(x, second.update_context(second.new_context(2), motion))
    assert torch.equal(out1, out2)
    again = build("temporal", entry, seed=3)
    perturb(again)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize("kind, entry", components("temporal"))
def test_temporal_update_leaves_the_old_context_valid(kind, entry):
    """T6: a context is read at every denoising step; updating must not change an old one."""
    module = build("temporal", entry)
    perturb(module)
    x = clip(0)
    ctx = module.update_context(module.new_context(2), clip(1, frames=3))
    before = module(x, ctx)
    module.update_context(ctx, clip(2, frames=3))
    assert torch.equal(module(x, ctx), before)


# ---- audio_fusion (spec §3) ---------------------------------------------------------------------

A = SLOT_BY_NAME["audio_fusion"].smoke_build_args["audio_dim"]


def tokens(seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(6, 12, C, generator=g).to(dtype)
    audio = torch.randn(6, 4, A, generator=g).to(dtype)
    emotion = torch.tensor([0, 1, 2, 3, 4, 5])
    return video, audio, emotion


@pytest.mark.parametrize("kind, entry", components("audio_fusion"))
def test_audio_fusion_is_the_identity_at_init(kind, entry):
    module = build("audio_fusion", entry)
    video, audio, emotion = tokens(0)
    for label in (emotion, None):
        v, a = module(video, audio, label)
        assert torch.equal(v, video) and torch.equal(a, audio)


@pytest.mark.parametrize("kind, entry", components("audio_fusion"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_audio_fusion_keeps_shapes_and_dtype(kind, entry, dtype):
    module = build("audio_fusion", entry).to(dtype)
    perturb(module)
    video, audio, emotion = tokens(0, dtype)
    v, a = module(video, audio, emotion)
    assert (v.shape, a.shape, v.dtype, a.dtype) == (video.shape, audio.shape, dtype, dtype)
    assert torch.isfinite(v.float()).all() and torch.isfinite(a.float()).all()


@pytest.mark.parametrize("kind, entry", components("audio_fusion"))
def test_audio_fusion_gradients_reach_every_parameter(kind, entry):
    module = build("audio_fusion", entry)
    perturb(module)
    video, audio, emotion = tokens(0)
    video.requires_grad_()
    v, a = module(video, audio, emotion)
    (v.square().sum() + a.square().sum()).backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("kind, entry", components("audio_fusion"))
def test_audio_fusion_state_dict_round_trip(kind, entry):
    first = build("audio_fusion", entry, seed=3)
    perturb(first)
    second = build("audio_fusion", entry, seed=4)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    video, audio, emotion = tokens(0)
    for x, y in zip(first(video, audio, emotion), second(video, audio, emotion)):
        assert torch.equal(x, y)


# ---- the other slots ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, entry", components("scheduler"))
def test_scheduler_runs_from_noise_to_data(kind, entry):
    sampler = build("scheduler", entry)
    assert isinstance(sampler, Sampler)
    t = sampler.timesteps()
    assert float(t[0]) == 1.0 and float(t[-1]) == 0.0 and bool(torch.all(t[1:] < t[:-1]))
    z0, eps = torch.randn(2, 3), torch.randn(2, 3)
    x = eps
    for now, nxt in zip(t[:-1], t[1:]):
        x = sampler.step(x, eps - z0, float(now), float(nxt))
    assert torch.allclose(x, z0, atol=1e-5), "a straight path must be followed exactly (spec L1)"


def buildable(slot: str, entry):
    """Components whose options have no defaults (local weights) are tested with tiny saved models
    in their own test files; here only those that build from their defaults."""
    if _required_options(entry):
        pytest.skip(f"needs {', '.join(_required_options(entry))} (tested with tiny saved weights elsewhere)")
    return build(slot, entry)


@pytest.mark.parametrize("kind, entry", components("vae"))
def test_vae_follows_the_autoencoder_protocol(kind, entry):
    vae = buildable("vae", entry)
    assert isinstance(vae, Autoencoder)
    frames = torch.rand(2, 3, 16, 16) * 2 - 1
    latents = vae.encode(frames)
    assert latents.shape == (2, vae.latent_channels, 16 // vae.downsample, 16 // vae.downsample)
    assert vae.decode(latents).shape == frames.shape


@pytest.mark.parametrize("kind, entry", components("audio_encoder"))
def test_audio_encoder_gives_tokens_per_frame(kind, entry):
    encoder = buildable("audio_encoder", entry)
    assert isinstance(encoder, AudioEncoder)
    fps, frames, pad = 25.0, 6, 2
    waveform = torch.randn(2, (frames + 2 * pad) * 640) * 0.1
    tokens = encoder.encode(waveform, frames, fps, pad_frames=pad)
    assert tokens.shape == (2, frames, encoder.token_count, encoder.token_dim)
    assert torch.isfinite(tokens).all()


@pytest.mark.parametrize("kind, entry", components("image_encoder"))
def test_image_encoder_gives_one_embedding_per_image(kind, entry):
    encoder = buildable("image_encoder", entry)
    assert isinstance(encoder, ImageEncoder)
    embedding = encoder.encode(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert embedding.shape == (2, encoder.embed_dim) and torch.isfinite(embedding).all()


@pytest.mark.parametrize("kind, entry", components("emotion_detector"))
def test_emotion_detector_labels_every_frame_within_its_label_set(kind, entry):
    detector = buildable("emotion_detector", entry)
    labels = detector.frame_labels(torch.zeros(16000 * 2), 16000, 25.0, 50)
    assert labels.shape == (50,) and labels.dtype == torch.long
    assert int(labels.min()) >= 0 and int(labels.max()) < len(detector.labels)


@pytest.mark.parametrize("kind, entry", components("task"))
def test_task_has_run(kind, entry, tmp_path):
    values = {name: tmp_path / name for name in _required_options(entry)}  # tasks' required options are paths
    assert callable(getattr(build("task", entry, **values), "run", None))
