"""Tests of MEMO's multi-modal (joint video-audio) attention (spec E1, E3, §10).

Identity at init, shapes and dtypes, gradients, state dicts and seeding are checked for every
registered component in tests/plugins/test_contracts.py.
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from memo_zoo.slots.audio_fusion import AudioFusionModule
from memo_zoo_plugins.audio_fusion.multimodal_attention import (
    MultimodalAttentionConfig,
    MultimodalAttentionFusion,
    build,
)
from tests.unit.fusion_helpers import bfloat16_and_float32_outputs, explicit_attention, perturbed, reference_cases


def _perturbed(seed: int, channels: int, audio_dim: int, dtype=torch.float64, **options) -> MultimodalAttentionFusion:
    return perturbed(build, MultimodalAttentionConfig(**options), seed, channels, audio_dim, dtype)


def _reference(module: MultimodalAttentionFusion, video, audio, emotion):
    """Explicit joint attention: softmax(Q K^T / sqrt(d)) V over [video ; audio] tokens, per head."""
    c, length = module.channels, video.shape[1]
    qkv_v = module.video_norm(video, emotion) @ module.video_qkv.weight.T
    qkv_a = module.audio_norm(audio, emotion) @ module.audio_qkv.weight.T
    q, k, v = (torch.cat([qkv_v[..., i * c : (i + 1) * c], qkv_a[..., i * c : (i + 1) * c]], dim=1) for i in range(3))
    joint = explicit_attention(q, k, v, module.heads)
    video_out = video + joint[:, :length] @ module.video_out.weight.T + module.video_out.bias
    audio_out = audio + joint[:, length:] @ module.audio_out.weight.T + module.audio_out.bias
    return video_out, audio_out


@reference_cases
def test_e1_joint_attention_equals_explicit_reference(
    heads, head_dim, audio_dim, length, audio_tokens, emotion_conditioning, seed
):
    """E1: one softmax over the concatenated video and audio tokens, split into two residual outputs."""
    channels = heads * head_dim
    module = _perturbed(seed, channels, audio_dim, heads=heads, emotion_conditioning=emotion_conditioning)
    assert isinstance(module, AudioFusionModule)
    video = torch.randn(3, length, channels, dtype=torch.float64)
    audio = torch.randn(3, audio_tokens, audio_dim, dtype=torch.float64)
    emotion = torch.tensor([0, 7, 8])
    with torch.no_grad():
        got = module(video, audio, emotion)
        want = _reference(module, video, audio, emotion)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-9)


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


def test_e1_bfloat16_is_close_to_float32():
    """bf16 forward keeps dtypes on both streams and stays close to the fp32 result."""
    (v16, a16), (v32, a32) = bfloat16_and_float32_outputs(_perturbed)
    assert v16.dtype == a16.dtype == torch.bfloat16
    torch.testing.assert_close(v16.float(), v32, atol=0.25, rtol=0.05)


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
