"""The guide's classifier labelled by talking_world's own per-frame truth (min_intensity).

A world where every clip changes emotion: its clip label is wrong for part of its frames and the
change fades through a neutral face. Read with ``frame_truth``, each kept frame carries the label
and intensity the world's truth file gives at that frame."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from memo_zoo.data.samples import TalkingHeadSamples
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.recipe.components import component_config
from memo_zoo.tasks.expression_classifier import labelled_latents
from memo_zoo.train.config import TrainConfig
from memo_zoo_plugins.datasets.talking_world.api import load_truth


class MeanVAE(torch.nn.Module):
    """A frozen stand-in autoencoder: 4 x 4 average pooling to a 3-channel latent."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # fingerprinted like any autoencoder

    def encode(self, images):
        return torch.nn.functional.avg_pool2d(images, 4)


def test_frames_carry_the_world_truth_at_their_time(tmp_path, monkeypatch, registry):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    world = component_config(registry, "dataset", {
        "kind": "talking_world", "root": str(tmp_path / "world"), "identities": 2, "test_identities": 0,
        "clips_per_identity": 2, "long_clips": 0, "size": 32, "seconds": [3.0, 4.0],
        "emotions": ["angry", "sad", "happy"], "emotion_change_probability": 1.0, "workers": 1})
    context = SimpleNamespace(recipe=SimpleNamespace(data=SimpleNamespace(dataset=world)), build=registry.build)
    train = TrainConfig(samples={"size": 32, "clip_frames": 4, "motion_frames": [2], "fps": 25})
    data = labelled_latents(context, MeanVAE(), train, 3, frame_truth=True)

    samples = TalkingHeadSamples(registry.build("dataset", world).clips(), train.samples)
    start, mislabelled, faded = 0, 0, 0
    for clip, record in enumerate(samples.clips):
        truth = load_truth(record.truth)
        assert truth.fps == 25  # the cache keeps the world's rate: frame k is truth frame k
        count = len(range(0, samples.clip_length(clip), 3))
        names = truth.emotion_names()
        expected = [PAPER_LABELS.index(names[k]) for k in range(0, 3 * count, 3)]
        assert data.frame_labels[start:start + count].tolist() == expected
        assert np.allclose(data.intensity[start:start + count].numpy(), truth.intensity[0:3 * count:3])
        assert set(data.clips[start:start + count]) == {record.clip_id}
        mislabelled += sum(label != int(data.labels[start]) for label in expected)
        faded += int((data.intensity[start:start + count] < 0.5).sum())
        start += count
    assert start == data.latents.shape[0]
    assert mislabelled > 0 and faded > 0  # every clip changes emotion: its label is wrong somewhere

    clear = data.select(0.5)
    assert bool((clear.intensity >= 0.5).all()) and torch.equal(clear.labels, clear.frame_labels)
    assert clear.latents.shape[0] == data.latents.shape[0] - faded
