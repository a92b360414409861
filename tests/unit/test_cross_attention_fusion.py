"""Tests of the cross-attention audio baseline (spec E2, E3) and the ``none`` audio fusion.

Identity at init, shapes and dtypes, gradients, state dicts and seeding are checked for every
registered component in tests/plugins/test_contracts.py.
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from memo_zoo.slots.audio_fusion import AudioFusionModule
from memo_zoo_plugins.audio_fusion import identity
from memo_zoo_plugins.audio_fusion.cross_attention import CrossAttentionFusion, CrossAttentionFusionConfig, build
from memo_zoo_plugins.audio_fusion.emo_adanorm import EmoAdaNorm
from tests.unit.fusion_helpers import bfloat16_and_float32_outputs, explicit_attention, perturbed, reference_cases


def _perturbed(seed: int, channels: int, audio_dim: int, dtype=torch.float64, **options) -> CrossAttentionFusion:
    return perturbed(build, CrossAttentionFusionConfig(**options), seed, channels, audio_dim, dtype)


def _reference(module: CrossAttentionFusion, video, audio, emotion):
    """Explicit cross-attention: normed video queries, raw audio keys/values, per head."""
    q = module.norm(video, emotion) @ module.to_q.weight.T
    k, v = audio @ module.to_k.weight.T, audio @ module.to_v.weight.T
    out = explicit_attention(q, k, v, module.heads)
    return video + out @ module.to_out.weight.T + module.to_out.bias


@reference_cases
def test_e2_cross_attention_equals_explicit_reference(
    heads, head_dim, audio_dim, length, audio_tokens, emotion_conditioning, seed
):
    """E2: video tokens query the audio tokens; the audio stream passes through unchanged."""
    channels = heads * head_dim
    module = _perturbed(seed, channels, audio_dim, heads=heads, emotion_conditioning=emotion_conditioning)
    assert isinstance(module, AudioFusionModule)
    video = torch.randn(2, length, channels, dtype=torch.float64)
    audio = torch.randn(2, audio_tokens, audio_dim, dtype=torch.float64)
    emotion = torch.tensor([2, 8])
    with torch.no_grad():
        video_out, audio_out = module(video, audio, emotion)
        torch.testing.assert_close(video_out, _reference(module, video, audio, emotion), atol=1e-10, rtol=1e-9)
    assert audio_out is audio


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


def test_e2_bfloat16_is_close_to_float32_and_config_validation():
    """bf16 stays close to the fp32 result; config rejects a ``kind`` field and bad head counts."""
    (v16, _), (v32, _) = bfloat16_and_float32_outputs(_perturbed)
    assert v16.dtype == torch.bfloat16
    torch.testing.assert_close(v16.float(), v32, atol=0.25, rtol=0.05)
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
