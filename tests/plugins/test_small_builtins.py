"""The pixel VAE (spec A1) and the fixed emotion detector (spec E4)."""

import pytest
import torch
from pydantic import ValidationError

from memo_zoo.emotion import EMOTION2VEC_LABELS, PAPER_LABELS, label_index, no_emotion_index
from memo_zoo_plugins.emotion.fixed import FixedEmotionConfig, FixedEmotionDetector
from memo_zoo_plugins.vae.pixel import PixelVAE, PixelVAEConfig


def test_pixel_vae_round_trips_and_scales():
    vae = PixelVAE(PixelVAEConfig(scaling_factor=0.5))
    frames = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.equal(vae.encode(frames), frames * 0.5)
    assert torch.allclose(vae.decode(vae.encode(frames)), frames)


def test_label_sets_follow_the_paper_order():
    assert PAPER_LABELS == ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised", "others")
    assert len(EMOTION2VEC_LABELS) == 9
    assert no_emotion_index("paper") == 8 and no_emotion_index("emotion2vec") == 9
    assert label_index("happy") == 3
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        label_index("joy")


def test_fixed_detector_labels_every_frame():
    detector = FixedEmotionDetector(FixedEmotionConfig(label="sad"))
    labels = detector.frame_labels(torch.zeros(16000), 16000, 25.0, 30)
    assert labels.dtype == torch.long and labels.tolist() == [5] * 30


def test_fixed_detector_rejects_a_label_outside_its_set():
    with pytest.raises(ValidationError, match="'others' is not in the emotion2vec label set"):
        FixedEmotionConfig(label="others", label_set="emotion2vec")
