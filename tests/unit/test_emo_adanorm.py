"""Tests of Emo-AdaNorm (spec E3) and the shared emotion options (E4, §10)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from memo_zoo_plugins.audio_fusion.emo_adanorm import EmoAdaNorm, EmotionOptions, make_norm


def test_e3_zero_init_equals_plain_layer_norm_for_every_label():
    """E3: zero-initialised modulation -> exactly an affine-free LayerNorm, whatever the label."""
    torch.manual_seed(0)
    norm = EmoAdaNorm(16, num_classes=8, embedding_dim=32)
    x = torch.randn(9, 5, 16)
    want = F.layer_norm(x, (16,), eps=1e-6)
    assert torch.equal(norm(x, torch.arange(9)), want)
    assert torch.equal(norm(x, None), want)


def test_e3_labels_matter_after_one_training_step():
    """E3: one optimiser step on a label-dependent loss makes different labels give different outputs."""
    torch.manual_seed(1)
    norm = EmoAdaNorm(8, num_classes=8, embedding_dim=16)
    x, labels = torch.randn(8, 4, 8), torch.arange(8)
    target = torch.randn(8, 4, 8)
    optimizer = torch.optim.SGD(norm.parameters(), lr=0.1)
    F.mse_loss(norm(x, labels), target).backward()
    optimizer.step()
    same_x = x[:1].expand(9, -1, -1)
    with torch.no_grad():
        out = norm(same_x, torch.arange(9))
    for i in range(9):
        for j in range(i + 1, 9):
            assert not torch.allclose(out[i], out[j]), (i, j)


def test_e3_no_emotion_row_is_its_own_learned_embedding():
    """E3/I2: the table has num_classes + 1 rows; the last is "no emotion", used for None."""
    torch.manual_seed(2)
    norm = EmoAdaNorm(8, num_classes=9, embedding_dim=16)  # released classifier size (§10)
    assert norm.embedding.num_embeddings == 10 and norm.no_emotion_index == 9
    table = norm.embedding.weight
    for row in range(9):
        assert not torch.allclose(table[9], table[row])
    torch.nn.init.normal_(norm.modulation.weight)
    x = torch.randn(3, 2, 8)
    with torch.no_grad():
        assert torch.equal(norm(x, None), norm(x, torch.full((3,), 9)))
        assert not torch.allclose(norm(x, None), norm(x, torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError):
        norm(x, torch.zeros(2, dtype=torch.long))


def test_e3_bfloat16_and_gradients():
    """E3 in bf16 keeps the dtype; with the modulation perturbed, every parameter gets a gradient."""
    torch.manual_seed(3)
    norm = EmoAdaNorm(8, num_classes=8, embedding_dim=4)
    torch.nn.init.normal_(norm.modulation.weight)
    x = torch.randn(2, 3, 8)
    norm(x, torch.tensor([1, 5])).square().sum().backward()
    for name, p in norm.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    y = norm.bfloat16()(x.bfloat16(), torch.tensor([1, 5]))
    assert y.dtype == torch.bfloat16


def test_emotion_options_and_make_norm():
    """E4/§10: label-set size is a config field; emotion_conditioning=False gives a plain LayerNorm."""
    assert EmotionOptions().num_emotion_classes == 8
    with pytest.raises(ValidationError):
        EmotionOptions(num_emotion_classes=0)
    with pytest.raises(ValidationError):
        EmotionOptions(kind="x")
    assert isinstance(make_norm(8, EmotionOptions()), EmoAdaNorm)
    plain = make_norm(8, EmotionOptions(emotion_conditioning=False))
    x = torch.randn(2, 3, 8)
    assert torch.equal(plain(x, torch.tensor([0, 1])), plain(x, None))
