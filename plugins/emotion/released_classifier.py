"""The released MEMO emotion classifier (``misc/audio_emotion_classifier``) and its labelling (E4, E5, §10).

The classifier (released ``AudioEmotionClassifierModel``): ``num_classifier_layers`` linear layers
on a 1024-d emotion2vec_plus_large utterance embedding, named ``layers.fc1`` .. ``layers.fcN`` in an
``nn.Sequential`` with a ReLU (``relu1`` .. ``relu{N-1}``, no parameters) after each hidden one;
the N-1 hidden widths are ``num_classifier_channels`` and the output is the 9 classes of
emotion2vec (both 1024 and 9 are fixed in the released class). With one layer ``layers`` is the
single ``Linear`` itself (keys ``layers.weight`` / ``layers.bias``). ``forward`` returns the
softmax of the logits -- probabilities, reproduced exactly. The released labeller then applies a
SECOND softmax before its argmax (:func:`label_windows`): monotonic, so the label is the argmax
of the probabilities, but written as the released code computes it.

Released windowing (``memo/utils/audio_utils.extract_audio_emotion_labels``), which differs from
the zoo's per-frame E5 windows (``memo_zoo.emotion.segments``); :func:`released_windows` gives it:

- the first 2 s label the first second;
- for each whole second ``i`` from 1 s while ``i < duration - 1 s``, the 3 s from ``i - 1 s`` (cut
  at the end of the audio) label the second ``[i, i + 1 s)``;
- the last 2 s label the last second, written last (it overrides a middle window's overlap).

Per-sample labels are then nearest-interpolated to the number of video frames over the whole
audio (``torch.nn.functional.interpolate(mode="nearest")``), so ``fps`` plays no part, and a clip's
label is ``torch.mode`` of its frame labels: on a tie the SMALLEST label (golden README, Q15),
unlike the zoo's E5 rule (the tied label seen first) -- :func:`clip_modes`.

The detector (kind proposed: ``emotion2vec_released``) is emotion2vec_plus_large through funasr
(``emotion2vec.load_emotion2vec``, a local folder) + this classifier from a release. The released
code layer-norms every window before the backbone whatever the backbone's config says, and reads
channel 0 of a stereo file after an ffmpeg resample; here audio goes through the zoo's
``prepare_audio`` (channels averaged, polyphase resample to 16 kHz, D3).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memo_zoo.data.rates import AUDIO_RATE
from memo_zoo.emotion import EMOTION2VEC_LABELS
from memo_zoo.emotion.segments import prepare_audio
from memo_zoo.errors import MemoZooError
from memo_zoo.model.released.folder import (
    load_strict, part_weights_file, read_part_config, read_part_state, resolve_release,
)
from memo_zoo_plugins.emotion.configs import ReleasedEmotionConfig  # noqa: F401  (re-exported: its torch-free home)
from memo_zoo_plugins.emotion.emotion2vec import Emotion2vecBackbone

KIND = "emotion2vec_released"
PART = "audio_emotion_classifier"
IN_DIM = 1024  # emotion2vec_plus_large's embedding width; fixed in the released class
NUM_CLASSES = 9  # emotion2vec's classes (memo_zoo.emotion.EMOTION2VEC_LABELS); fixed in the released class


class ReleasedEmotionClassifier(nn.Module):
    """(B, 1024) embeddings -> (B, 9) class probabilities, as the released classifier (module docstring)."""

    def __init__(self, num_layers: int, channels: int):
        super().__init__()
        if num_layers < 1 or channels < 1:
            raise ValueError(f"num_layers and channels must be >= 1, got {num_layers}, {channels}")
        self.num_layers, self.channels = num_layers, channels
        if num_layers == 1:
            self.layers: nn.Module = nn.Linear(IN_DIM, NUM_CLASSES)
        else:
            named: list[tuple[str, nn.Module]] = []
            width = IN_DIM
            for n in range(1, num_layers):
                named += [(f"fc{n}", nn.Linear(width, channels)), (f"relu{n}", nn.ReLU())]
                width = channels
            named.append((f"fc{num_layers}", nn.Linear(width, NUM_CLASSES)))
            self.layers = nn.Sequential(OrderedDict(named))

    def forward(self, embeddings: Tensor) -> Tensor:
        if embeddings.shape[-1] != IN_DIM:
            raise ValueError(f"the released emotion classifier takes {IN_DIM}-d embeddings (emotion2vec_plus_large), "
                             f"got shape {tuple(embeddings.shape)}")
        return torch.softmax(self.layers(embeddings), dim=-1)


def build_classifier(config: Mapping[str, Any]) -> ReleasedEmotionClassifier:
    """An untrained classifier shaped by the part config (``read_part_config(folder, PART)``)."""
    return ReleasedEmotionClassifier(int(config["num_classifier_layers"]), int(config["num_classifier_channels"]))


def load_classifier(release: str | Path) -> ReleasedEmotionClassifier:
    """The classifier of a release (a folder, or a hub id in the local HF cache), loaded strictly, eval mode."""
    folder = resolve_release(release)
    module = build_classifier(read_part_config(folder, PART))
    load_strict(module, read_part_state(folder, PART), str(part_weights_file(folder, PART)))
    return module.eval()


def label_windows(probs: Tensor) -> Tensor:
    """Label per window from the classifier's probabilities (W, 9): argmax of a second softmax,
    as the released ``extract_emotion`` computes it. Returns a LongTensor (W,)."""
    return torch.argmax(torch.softmax(probs, dim=-1), dim=-1)


# ---------------------------------------------------------------------------------- windowing


@dataclass(frozen=True)
class ReleasedWindows:
    """Audio windows of the released labeller, in the order their labels are written.

    Window ``k`` classifies samples ``[starts[k], ends[k])`` and labels ``[label_starts[k],
    label_ends[k])``; all (W,) int64.
    """

    starts: np.ndarray
    ends: np.ndarray
    label_starts: np.ndarray
    label_ends: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def released_windows(num_samples: int, sample_rate: int = AUDIO_RATE) -> ReleasedWindows:
    """First 2 s, 3 s windows stepped by 1 s, last 2 s (module docstring), for ``num_samples`` samples."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be >= 1, got {sample_rate}")
    n, second = int(num_samples), int(sample_rate)
    rows = [(0, min(2 * second, n), 0, min(second, n))]
    rows += [(i - second, min(i + 2 * second, n), i, min(i + second, n)) for i in range(second, n - second, second)]
    rows.append((max(n - 2 * second, 0), n, max(n - second, 0), n))
    starts, ends, label_starts, label_ends = (np.asarray(column, dtype=np.int64) for column in zip(*rows))
    return ReleasedWindows(starts, ends, label_starts, label_ends)


def sample_labels(num_samples: int, windows: ReleasedWindows, window_labels: Tensor) -> Tensor:
    """(num_samples,) int64 label per audio sample; later windows overwrite earlier ones."""
    window_labels = torch.as_tensor(window_labels).reshape(-1)
    if len(window_labels) != len(windows):
        raise ValueError(f"{len(window_labels)} window labels for {len(windows)} windows")
    labels = torch.full((int(num_samples),), -1, dtype=torch.int64)
    for start, end, label in zip(windows.label_starts, windows.label_ends, window_labels.tolist()):
        labels[int(start):int(end)] = int(label)
    if bool((labels < 0).any()):  # cannot happen for released_windows: every sample is covered
        raise ValueError("some samples are covered by no window")
    return labels


def frames_from_samples(labels: Tensor, num_frames: int) -> Tensor:
    """Per-sample labels -> (num_frames,) int64 by nearest interpolation over the whole audio, as
    the released code does (``F.interpolate(mode="nearest")`` on the float labels)."""
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if num_frames == 0:
        return torch.zeros(0, dtype=torch.int64)
    values = torch.as_tensor(labels).reshape(1, 1, -1).float()
    return F.interpolate(values, size=int(num_frames), mode="nearest").reshape(-1).round().long()


def frame_labels_from_windows(num_samples: int, windows: ReleasedWindows, window_labels: Tensor,
                              num_frames: int) -> Tensor:
    """Window labels -> per-frame labels (num_frames,) int64: :func:`sample_labels` then
    :func:`frames_from_samples`."""
    return frames_from_samples(sample_labels(num_samples, windows, window_labels), num_frames)


def clip_modes(frame_labels: Tensor, clip_length: int) -> Tensor:
    """Label of each run of ``clip_length`` frames (the last may be shorter): its most frequent
    label, ties to the SMALLEST label as ``torch.mode`` gives them (Q15). LongTensor (clips,)."""
    if clip_length < 1:
        raise ValueError(f"clip_length must be >= 1, got {clip_length}")
    labels = torch.as_tensor(frame_labels).long().reshape(-1)
    if labels.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    if int(labels.min()) < 0:
        raise ValueError("frame labels must be >= 0")
    classes = int(labels.max()) + 1
    clip = torch.arange(labels.numel()) // clip_length
    count = int(clip[-1]) + 1
    counts = torch.bincount(clip * classes + labels, minlength=count * classes).view(count, classes)
    return counts.argmax(dim=1)  # argmax returns the first maximum: the smallest tied label


# ---------------------------------------------------------------------------------- the detector


class WindowFeatures(Protocol):
    """What the detector needs of a backbone: one feature vector per audio window."""

    feature_dim: int

    def window_features(self, audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Tensor: ...

    def settings(self) -> dict[str, Any]: ...


class ReleasedEmotionDetector:
    """``EmotionDetector`` (``memo_zoo.slots.emotion_detector``) labelling as the released code does."""

    labels: tuple[str, ...] = EMOTION2VEC_LABELS

    def __init__(self, backbone: WindowFeatures, classifier: ReleasedEmotionClassifier, source: str = ""):
        if backbone.feature_dim != IN_DIM:
            raise MemoZooError(f"{KIND}: the backbone gives {backbone.feature_dim}-d features, the released "
                               f"classifier takes {IN_DIM}-d (emotion2vec_plus_large, not a base model)")
        self.backbone = backbone
        self.classifier = classifier.eval()
        self.source = source

    def released_part(self):
        """The classifier as the release's ``misc/audio_emotion_classifier`` part (``memo-zoo export``)."""
        from memo_zoo.model.released.export import ReleasedPart

        config = {"num_classifier_layers": self.classifier.num_layers,
                  "num_classifier_channels": self.classifier.channels}
        return ReleasedPart(PART, config, self.classifier.state_dict())

    @property
    def fingerprint(self) -> str:
        """Hash of what the labels depend on (cache key of ``segments.label_audio_file``)."""
        weights = hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes()
                                          for t in self.classifier.state_dict().values())).hexdigest()
        data = {"kind": KIND, "backbone": self.backbone.settings(), "classifier": weights}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def window_probabilities(self, audio: np.ndarray, windows: ReleasedWindows) -> Tensor:
        """(W, 9) classifier probabilities of the windows of 16 kHz mono audio."""
        features = self.backbone.window_features(audio, windows.starts, windows.ends)
        with torch.no_grad():
            return self.classifier(features.float())

    def frame_labels(self, audio: Tensor, sample_rate: int, fps: float, num_frames: int) -> Tensor:
        """Label per video frame (num_frames,) int64 over the whole audio; ``fps`` is not used
        (the released mapping spreads the audio over the frames it is given)."""
        if num_frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if num_frames == 0:
            return torch.zeros(0, dtype=torch.int64)
        samples = prepare_audio(audio, sample_rate)
        windows = released_windows(len(samples), AUDIO_RATE)
        window_labels = label_windows(self.window_probabilities(samples, windows))
        return frame_labels_from_windows(len(samples), windows, window_labels, num_frames)


class ReleasedEmotion2vec(Emotion2vecBackbone):
    """emotion2vec utterance embeddings with the released preprocessing: every window layer-normed
    (the released ``extract_emotion`` does so whatever the backbone's config.yaml says)."""

    def __init__(self, reference: str | Path, device: str = "auto", batch_size: int = 16):
        super().__init__(reference, device, batch_size)
        self.normalize = True

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "normalize": True}


def build(config: ReleasedEmotionConfig) -> ReleasedEmotionDetector:
    # The classifier first: it is small, and a missing release should fail before a large backbone loads.
    classifier = load_classifier(config.release)
    backbone = ReleasedEmotion2vec(config.backbone, config.device, config.batch_size)
    return ReleasedEmotionDetector(backbone, classifier, source=config.release)
