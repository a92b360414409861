"""Tests of MEMO's multi-modal (joint video-audio) attention (spec E1, E3, A6, §10)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo_plugins.audio_fusion.emo_adanorm import EmoAdaNorm
from memo_zoo_plugins.audio_fusion.multimodal_attention import (
    MultimodalAttentionConfig,
    MultimodalAttentionFusion,
    build,
)
from memo_zoo_plugins.audio_fusion.protocol import AudioFusionModule


def _perturbed(seed: int, channels: int, audio_dim: int, dtype=torch.float64, **options) -> MultimodalAttentionFusion:
    """A module with every zero-initialised layer set to random values."""
    torch.manual_seed(seed)
    module = build(MultimodalAttentionConfig(**options), channels=channels, audio_dim=audio_dim).to(dtype)
    with torch.no_grad():
        for layer in (module.video_out, module.audio_out):
            layer.weight.normal_()
            layer.bias.normal_()
        for norm in (module.video_norm, module.audio_norm):
            if isinstance(norm, EmoAdaNorm):
                norm.modulation.weight.normal_(std=0.5)
                norm.modulation.bias.normal_(std=0.5)
    return module


def _reference(module: MultimodalAttentionFusion, video, audio, emotion):
    """Explicit joint attention: softmax(Q K^T / sqrt(d)) V over [video ; audio] tokens, per head."""
    heads, c, length = module.heads, module.channels, video.shape[1]
    d = c // heads
    qkv_v = module.video_norm(video, emotion) @ module.video_qkv.weight.T
    qkv_a = module.audio_norm(audio, emotion) @ module.audio_qkv.weight.T
    q, k, v = (torch.cat([qkv_v[..., i * c : (i + 1) * c], qkv_a[..., i * c : (i + 1) * c]], dim=1) for i in range(3))
    joint = torch.empty_like(q)
    for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        scores = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(d)
        probs = torch.exp(scores - scores.amax(-1, keepdim=True))
        joint[..., sl] = (probs / probs.sum(-1, keepdim=True)) @ v[..., sl]
    video_out = video + joint[:, :length] @ module.video_out.weight.T + module.video_out.bias
    audio_out = audio + joint[:, length:] @ module.audio_out.weight.T + module.audio_out.bias
    return video_out, audio_out


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
def test_e1_joint_attention_equals_explicit_reference(
    heads, head_dim, audio_dim, length, audio_tokens, emotion_conditioning, seed
):
    """E1: one softmax over the concatenated video and audio tokens, split into two residual outputs."""
    channels = heads * head_dim
    module = _perturbed(seed, channels, audio_dim, heads=heads, emotion_conditioning=emotion_conditioning)
    video = torch.randn(3, length, channels, dtype=torch.float64)
    audio = torch.randn(3, audio_tokens, audio_dim, dtype=torch.float64)
    emotion = torch.tensor([0, 7, 8])
    with torch.no_grad():
        got = module(video, audio, emotion)
        want = _reference(module, video, audio, emotion)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-9)


def test_a6_identity_at_init_on_both_streams():
    """A6: both output projections start at zero -> video_out == video and audio_out == audio."""
    torch.manual_seed(0)
    for emotion_conditioning in (True, False):
        config = MultimodalAttentionConfig(heads=4, emotion_conditioning=emotion_conditioning)
        module = build(config, channels=16, audio_dim=12)
        assert isinstance(module, AudioFusionModule)
        video, audio = torch.randn(6, 9, 16), torch.randn(6, 32, 12)
        v, a = module(video, audio, torch.arange(6))
        assert torch.equal(v, video) and torch.equal(a, audio)


def test_e3_emotion_changes_the_output_once_trained():
    """E3: with the modulation non-zero, the label (and "no emotion" = None) changes both streams."""
    module = _perturbed(1, 8, 6, dtype=torch.float32, heads=2)
    video, audio = torch.randn(2, 4, 8), torch.randn(2, 3, 6)
    with torch.no_grad():
        happy = module(video, audio, torch.tensor([3, 3]))
        sad = module(video, audio, torch.tensor([5, 5]))
        none = module(video, audio, None)
        no_emotion = module(video, audio, torch.tensor([8, 8]))
    assert not torch.allclose(happy[0], sad[0]) and not torch.allclose(happy[1], sad[1])
    assert torch.equal(none[0], no_emotion[0]) and torch.equal(none[1], no_emotion[1])


def test_e1_bfloat16_gradients_state_dict_determinism():
    """bf16 forward keeps dtypes; gradients reach every parameter; checkpoints and seeds reproduce."""
    m32 = _perturbed(2, 8, 6, dtype=torch.float32, heads=2)
    m16 = _perturbed(2, 8, 6, dtype=torch.bfloat16, heads=2)
    video, audio, emotion = torch.randn(2, 4, 8), torch.randn(2, 3, 6), torch.tensor([1, 2])
    v16, a16 = m16(video.bfloat16(), audio.bfloat16(), emotion)
    v32, a32 = m32(video, audio, emotion)
    assert v16.dtype == a16.dtype == torch.bfloat16
    torch.testing.assert_close(v16.float(), v32, atol=0.25, rtol=0.05)

    (v32.square().sum() + a32.square().sum()).backward()
    for name, p in m32.named_parameters():
        if name.endswith("embedding.weight"):  # only the rows of the labels used get gradients
            assert p.grad[[1, 2]].abs().sum() > 0, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name

    a, b, again = _perturbed(3, 8, 6, heads=2), _perturbed(4, 8, 6, heads=2), _perturbed(3, 8, 6, heads=2)
    b.load_state_dict(a.state_dict())
    video, audio = video.double(), audio.double()
    with torch.no_grad():
        outs = [m(video, audio, emotion) for m in (a, b, again)]
    assert all(torch.equal(outs[0][i], o[i]) for o in outs[1:] for i in range(2))


def test_e1_dropout_only_while_training_and_config_validation():
    """Dropout acts only in train mode; config rejects unknown fields and bad head counts."""
    module = _perturbed(5, 8, 6, dtype=torch.float32, heads=2, dropout=0.5)
    video, audio = torch.randn(2, 4, 8), torch.randn(2, 3, 6)
    module.eval()
    assert torch.equal(module(video, audio)[0], module(video, audio)[0])
    module.train()
    torch.manual_seed(0)
    assert not torch.equal(module(video, audio)[0], module.eval()(video, audio)[0])
    assert "kind" not in MultimodalAttentionConfig.model_fields
    with pytest.raises(ValidationError):
        MultimodalAttentionConfig(gate=True)
    with pytest.raises(ValueError):
        build(MultimodalAttentionConfig(heads=3), channels=8, audio_dim=6)
    with pytest.raises(ValueError):
        module(video, audio[:1])
