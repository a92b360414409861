"""The released emotion labelling (plugins/emotion/released_classifier.py; E4, E5, method.md §10):
its windows, per-sample and per-frame labels, the clip mode with ties to the smallest label
(golden README Q15, checked on golden case d), and the detector around a stand-in backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memo_zoo.emotion import EMOTION2VEC_LABELS, no_emotion_index
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.emotion.released_classifier import (IN_DIM, NUM_CLASSES, ReleasedEmotionConfig,
                                                          ReleasedEmotionDetector, ReleasedEmotionClassifier,
                                                          clip_modes, frame_labels_from_windows,
                                                          frames_from_samples, label_windows, load_classifier,
                                                          released_windows, sample_labels)
from tests.golden import GoldenSet

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = GoldenSet.named("memo_released")


def labelled_by_hand(num_samples: int, rate: int) -> list[int]:
    """Which window labels each sample, following the released description step by step:
    window 0 = first 2 s -> first second; then one window per whole second i (1 s <= i < n - 1 s)
    labelling [i, i + 1 s); last window = last 2 s -> last second, written last."""
    owner = [-1] * num_samples
    for s in range(min(rate, num_samples)):
        owner[s] = 0
    window = 0
    i = rate
    while i < num_samples - rate:
        window += 1
        for s in range(i, min(i + rate, num_samples)):
            owner[s] = window
        i += rate
    window += 1
    for s in range(max(num_samples - rate, 0), num_samples):
        owner[s] = window
    return owner


@pytest.mark.parametrize("num_samples", [1, 7, 10, 19, 20, 21, 29, 30, 31, 45, 60, 61, 99])
def test_windows_label_every_sample_as_the_released_loop_does(num_samples):
    rate = 10
    windows = released_windows(num_samples, rate)
    labels = sample_labels(num_samples, windows, torch.arange(len(windows)))
    assert labels.tolist() == labelled_by_hand(num_samples, rate)
    assert windows.starts[0] == 0 and windows.ends[0] == min(2 * rate, num_samples)
    assert windows.ends[-1] == num_samples and windows.starts[-1] == max(num_samples - 2 * rate, 0)
    middle = slice(1, len(windows) - 1)
    # middle windows: 3 s from one second before the second they label, cut at the end of the audio
    assert np.array_equal(windows.starts[middle], windows.label_starts[middle] - rate)
    assert np.array_equal(windows.ends[middle], np.minimum(windows.label_starts[middle] + 2 * rate, num_samples))


def test_window_labels_must_match_the_windows():
    windows = released_windows(50, 10)
    with pytest.raises(ValueError, match="window labels for"):
        sample_labels(50, windows, torch.zeros(len(windows) + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="num_samples"):
        released_windows(0, 10)


def test_frames_take_the_nearest_sample_label_over_the_whole_audio():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert frames_from_samples(labels, 3).tolist() == [0, 1, 2]
    assert frames_from_samples(labels, 12).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert frames_from_samples(labels, 0).tolist() == []
    samples = torch.randint(0, NUM_CLASSES, (1000,), generator=torch.Generator().manual_seed(0))
    for frames in (7, 16, 333):
        index = (torch.arange(frames) * (1000 / frames)).floor().long()  # nearest: floor(i * in / out)
        assert torch.equal(frames_from_samples(samples, frames), samples[index])


def test_clip_mode_ties_go_to_the_smallest_label_like_torch_mode():
    assert clip_modes(torch.tensor([3, 3, 1, 1, 5]), 5).tolist() == [1]
    assert clip_modes(torch.tensor([4, 2, 2, 4, 7, 7, 0]), 4).tolist() == [2, 7]
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        labels = torch.randint(0, NUM_CLASSES, (48,), generator=generator)
        expected = [int(torch.mode(chunk).values) for chunk in labels.split(16)]
        assert clip_modes(labels, 16).tolist() == expected


def test_clip_mode_reproduces_the_golden_pipeline_emotion():
    """Case d: the pipeline's cond emotion (second entry of each clip's emotion pair; the first is
    the 'no emotion' index) is the mode of that clip's per-frame labels."""
    case = GOLDEN.case("d_diffusion_net")
    per_frame = case.names(prefix="clip")
    clips = [name.split(".")[0] for name in per_frame if name.endswith(".emotion_per_frame")]
    assert clips, "case d has no clipK.emotion_per_frame tensors"
    for clip in clips:
        frames = case[f"{clip}.emotion_per_frame"]
        pair = case[f"{clip}.audio_emotion_cfg"]
        assert int(pair[0]) == no_emotion_index("emotion2vec")
        assert clip_modes(frames, len(frames)).tolist() == [int(pair[1])]


def test_label_windows_is_the_argmax_of_a_second_softmax():
    probs = torch.softmax(torch.randn(20, NUM_CLASSES, generator=torch.Generator().manual_seed(2)), dim=-1)
    assert torch.equal(label_windows(probs), probs.argmax(dim=-1))
    case = GOLDEN.case("a_small_models")
    assert torch.equal(label_windows(case["classifier.output_probs"]), case["classifier.argmax_label"].long())


def test_classifier_layout_matches_the_released_names():
    one = ReleasedEmotionClassifier(1, 8)
    assert set(one.state_dict()) == {"layers.weight", "layers.bias"}
    three = ReleasedEmotionClassifier(3, 8)
    assert list(three.state_dict()) == [f"layers.fc{n}.{p}" for n in (1, 2, 3) for p in ("weight", "bias")]
    assert three.layers.fc3.out_features == NUM_CLASSES and three.layers.fc1.in_features == IN_DIM
    with pytest.raises(ValueError, match="1024-d"):
        three(torch.zeros(2, 10))


class StandInBackbone:
    """Deterministic features per window (seeded by the window's place and loudness), recording the calls."""

    def __init__(self, feature_dim: int = IN_DIM):
        self.feature_dim = feature_dim
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def settings(self):
        return {"name": "stand-in", "embed_dim": self.feature_dim}

    def window_features(self, audio, starts, ends):
        self.calls.append((np.asarray(starts), np.asarray(ends)))
        rows = []
        for s, e in zip(starts, ends):
            seed = int(s) * 7 + int(e) + int(1000 * float(np.abs(audio[s:e]).mean()))
            rows.append(torch.randn(self.feature_dim, generator=torch.Generator().manual_seed(seed)) * 4.0)
        return torch.stack(rows)


def test_detector_labels_frames_through_the_released_steps():
    classifier = load_classifier(GOLDEN.path("tiny"))
    backbone = StandInBackbone()
    detector = ReleasedEmotionDetector(backbone, classifier)
    assert detector.labels == EMOTION2VEC_LABELS and len(detector.labels) == NUM_CLASSES
    generator = torch.Generator().manual_seed(4)
    audio = (torch.rand(16000 * 5 + 1234, generator=generator) * 2 - 1) * torch.linspace(0.01, 0.9, 16000 * 5 + 1234)
    frames = detector.frame_labels(audio, 16000, 25.0, 64)
    windows = released_windows(len(audio))
    starts, ends = backbone.calls[0]
    assert np.array_equal(starts, windows.starts) and np.array_equal(ends, windows.ends)
    with torch.no_grad():
        probs = classifier(backbone.window_features(audio.numpy(), windows.starts, windows.ends))
    expected = frame_labels_from_windows(len(audio), windows, label_windows(probs), 64)
    assert frames.dtype == torch.int64 and torch.equal(frames, expected)
    assert len(set(frames.tolist())) > 1, "the stand-in features should give more than one label"
    assert detector.frame_labels(audio, 16000, 25.0, 0).tolist() == []
    assert isinstance(detector.fingerprint, str) and len(detector.fingerprint) == 64


def test_detector_refuses_a_backbone_of_another_width():
    with pytest.raises(MemoZooError, match="768-d features.*1024-d"):
        ReleasedEmotionDetector(StandInBackbone(768), ReleasedEmotionClassifier(2, 4))


def test_config_is_strict_and_needs_a_backbone():
    with pytest.raises(ValueError, match="backbone"):
        ReleasedEmotionConfig()
    with pytest.raises(ValueError, match="extra"):
        ReleasedEmotionConfig(backbone="e2v", stride=2)
    assert ReleasedEmotionConfig(backbone="e2v").release == "memoavatar/memo"
