"""Tests of the cross-attention audio baseline (spec E2, E3, A6) and the ``none`` audio fusion."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo_plugins.audio_fusion import identity
from memo_zoo_plugins.audio_fusion.cross_attention import CrossAttentionFusion, CrossAttentionFusionConfig, build
from memo_zoo_plugins.audio_fusion.emo_adanorm import EmoAdaNorm
from memo_zoo_plugins.audio_fusion.protocol import AudioFusionModule


def _perturbed(seed: int, channels: int, audio_dim: int, dtype=torch.float64, **options) -> CrossAttentionFusion:
    torch.manual_seed(seed)
    module = build(CrossAttentionFusionConfig(**options), channels=channels, audio_dim=audio_dim).to(dtype)
    with torch.no_grad():
        module.to_out.weight.normal_()
        module.to_out.bias.normal_()
        if isinstance(module.norm, EmoAdaNorm):
            module.norm.modulation.weight.normal_(std=0.5)
    return module


def _reference(module: CrossAttentionFusion, video, audio, emotion):
    """Explicit cross-attention: normed video queries, raw audio keys/values, per head."""
    heads, c = module.heads, module.channels
    d = c // heads
    q = module.norm(video, emotion) @ module.to_q.weight.T
    k, v = audio @ module.to_k.weight.T, audio @ module.to_v.weight.T
    out = torch.empty_like(q)
    for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        scores = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(d)
        probs = torch.exp(scores - scores.amax(-1, keepdim=True))
        out[..., sl] = (probs / probs.sum(-1, keepdim=True)) @ v[..., sl]
    return video + out @ module.to_out.weight.T + module.to_out.bias


@settings(max_examples=20, deadline=None, database=None)
@given(
    heads=st.sampled_from([1, 2, 4]),
    head_dim=st.integers(1, 3),
    audio_dim=st.integers(1, 6),
    length=st.integers(1, 5),
    audio_tokens=st.integers(1, 4),
    emotion_conditioning=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_e2_cross_attention_equals_explicit_reference(
    heads, head_dim, audio_dim, length, audio_tokens, emotion_conditioning, seed
):
    """E2: video tokens query the audio tokens; the audio stream passes through unchanged."""
    channels = heads * head_dim
    module = _perturbed(seed, channels, audio_dim, heads=heads, emotion_conditioning=emotion_conditioning)
    video = torch.randn(2, length, channels, dtype=torch.float64)
    audio = torch.randn(2, audio_tokens, audio_dim, dtype=torch.float64)
    emotion = torch.tensor([2, 8])
    with torch.no_grad():
        video_out, audio_out = module(video, audio, emotion)
        torch.testing.assert_close(video_out, _reference(module, video, audio, emotion), atol=1e-10, rtol=1e-9)
    assert audio_out is audio


def test_a6_identity_at_init():
    """A6: zero-initialised output projection -> video_out == video exactly."""
    torch.manual_seed(0)
    module = build(CrossAttentionFusionConfig(heads=4), channels=16, audio_dim=12)
    assert isinstance(module, AudioFusionModule)
    video, audio = torch.randn(6, 9, 16), torch.randn(6, 32, 12)
    v, a = module(video, audio, torch.arange(6))
    assert torch.equal(v, video) and a is audio


def test_e3_emotion_is_ablatable_independently_of_fusion():
    """E2+E3: labels matter when emotion_conditioning=True and are ignored when False."""
    video, audio = torch.randn(2, 4, 8), torch.randn(2, 3, 6)
    with_emotion = _perturbed(1, 8, 6, dtype=torch.float32, heads=2)
    without = _perturbed(1, 8, 6, dtype=torch.float32, heads=2, emotion_conditioning=False)
    assert not any(isinstance(m, EmoAdaNorm) for m in without.modules())
    with torch.no_grad():
        angry = with_emotion(video, audio, torch.tensor([0, 0]))[0]
        surprised = with_emotion(video, audio, torch.tensor([6, 6]))[0]
        assert not torch.allclose(angry, surprised)
        assert torch.equal(without(video, audio, torch.tensor([0, 0]))[0], without(video, audio, None)[0])


def test_e2_bfloat16_gradients_state_dict_determinism():
    """bf16 keeps dtype; gradients reach every parameter; checkpoints and seeds reproduce."""
    m32 = _perturbed(2, 8, 6, dtype=torch.float32, heads=2)
    m16 = _perturbed(2, 8, 6, dtype=torch.bfloat16, heads=2)
    video, audio, emotion = torch.randn(2, 4, 8), torch.randn(2, 3, 6), torch.tensor([1, 2])
    v16, _ = m16(video.bfloat16(), audio.bfloat16(), emotion)
    v32, _ = m32(video, audio, emotion)
    assert v16.dtype == torch.bfloat16
    torch.testing.assert_close(v16.float(), v32, atol=0.25, rtol=0.05)

    v32.square().sum().backward()
    for name, p in m32.named_parameters():
        if name.endswith("embedding.weight"):
            assert p.grad[[1, 2]].abs().sum() > 0, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name

    a, b, again = _perturbed(3, 8, 6, heads=2), _perturbed(4, 8, 6, heads=2), _perturbed(3, 8, 6, heads=2)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        outs = [m(video.double(), audio.double(), emotion)[0] for m in (a, b, again)]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    with pytest.raises(ValidationError):
        CrossAttentionFusionConfig(kind="cross_attention")
    with pytest.raises(ValueError):
        build(CrossAttentionFusionConfig(heads=3), channels=8, audio_dim=6)


def test_none_fusion_is_identity_without_parameters():
    """``none`` (ablation floor of spec §3): both streams returned as they are; no parameters."""
    module = identity.build(identity.NoFusionConfig(), channels=8, audio_dim=6)
    assert isinstance(module, AudioFusionModule) and not list(module.parameters())
    video, audio = torch.randn(2, 4, 8), torch.randn(2, 3, 6)
    v, a = module(video, audio, torch.tensor([0, 1]))
    assert v is video and a is audio
    with pytest.raises(ValidationError):
        identity.NoFusionConfig(heads=2)
