"""Loss regions measured per clip (issue 20 item 4; memo_zoo.train.clip_regions): each sample's
weight map uses its own clip's mouth box, measured once from landmarks and kept in the frame cache.

Checked: the per-sample maps equal the fixed-box map built with each sample's box; the weighted
loss with a (B, H, W) map equals the one computed sample by sample; merged and per-group forwards
agree with per-sample maps; boxes are measured once per clip and read back, a clip without a face
falls back to the recipe's box; on the real-photo tier the measured box holds the mouth; the
training key of a recipe without measured regions is unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from memo_zoo.tasks.shared_stage1 import train_key_document
from memo_zoo.train.clip_regions import ClipRegions, measure_clip_regions, region_file
from memo_zoo.train.config import TrainConfig
from memo_zoo.train.loss import per_sample_mse
from memo_zoo.train.regions import LossRegion, region_weight_map, region_weight_maps

FIXED = LossRegion(name="face", box=(0.1, 0.1, 0.9, 0.9), weight=1.0)
MEASURED = LossRegion(name="mouth", box=(0.28, 0.5, 0.72, 0.8), weight=8.0, source="landmarks")


def test_per_sample_maps_are_the_fixed_maps_of_each_samples_box():
    boxes = [(0.2, 0.55, 0.6, 0.85), (0.3, 0.4, 0.9, 0.7), (0.0, 0.0, 1.0, 1.0)]
    maps = region_weight_maps([FIXED, MEASURED], 8, 6, {"mouth": boxes})
    assert maps.shape == (3, 8, 6) and maps.dtype == torch.float32
    for b, box in enumerate(boxes):
        own = MEASURED.model_copy(update={"box": box, "source": "box"})
        torch.testing.assert_close(maps[b], region_weight_map([FIXED, own], 8, 6))
    with pytest.raises(ValueError, match="mouth has 2 samples, other has 3"):
        region_weight_maps([FIXED, MEASURED], 8, 6, {"mouth": boxes[:2], "other": boxes})


def test_the_loss_with_per_sample_maps_is_each_samples_weighted_loss():
    g = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(3, 2, 4, 8, 6, generator=g), torch.randn(3, 2, 4, 8, 6, generator=g)
    maps = torch.rand(3, 8, 6, generator=g) + 0.5
    losses = per_sample_mse(prediction, target, maps)
    for b in range(3):
        torch.testing.assert_close(losses[b], per_sample_mse(prediction[b:b + 1], target[b:b + 1], maps[b])[0])
    with pytest.raises(ValueError, match="loss weights"):
        per_sample_mse(prediction, target, maps[:2])


class Clips:
    """A ClipFrames over in-memory clips with their own folders."""

    def __init__(self, frames: list[np.ndarray], root):
        self.frames, self.root, self.clips = frames, root, list(range(len(frames)))

    def clip_directory(self, clip: int):
        folder = self.root / f"clip{clip}"
        folder.mkdir(exist_ok=True)
        return folder

    def clip_frames(self, clip: int) -> np.ndarray:
        return self.frames[clip]


def test_boxes_are_measured_once_per_clip_and_a_clip_without_a_face_falls_back(tmp_path):
    clips = Clips([np.full((4, 16, 16, 3), v, np.uint8) for v in (10, 20, 30)], tmp_path)
    calls = []

    def measure(frames, region):
        calls.append(int(frames[0, 0, 0, 0]))
        return None if frames[0, 0, 0, 0] == 20 else (0.1, 0.2, 0.3 + frames[0, 0, 0, 0] / 100, 0.9)

    assert measure_clip_regions(clips, [FIXED], measure, "test") is None  # nothing to measure
    first = measure_clip_regions(clips, [FIXED, MEASURED], measure, "test")
    assert calls == [10, 20, 30]
    assert first.boxes["mouth"] == [(0.1, 0.2, 0.4, 0.9), MEASURED.box, (0.1, 0.2, 0.6, 0.9)]
    assert first.fallbacks == {"mouth": 1}
    again = measure_clip_regions(clips, [FIXED, MEASURED], measure, "test")
    assert calls == [10, 20, 30] and again.boxes == first.boxes and again.fallbacks == first.fallbacks
    assert again.of("mouth", [2, 0]) == [first.boxes["mouth"][2], first.boxes["mouth"][0]]
    # another margin or detector is another measurement
    assert region_file(tmp_path, MEASURED, "test") != region_file(tmp_path, MEASURED.model_copy(
        update={"margin": 0.5}), "test") != region_file(tmp_path, MEASURED, "dlib_hog")
    region_file(clips.clip_directory(0), MEASURED, "test").write_text("{damaged")
    measure_clip_regions(clips, [MEASURED], measure, "test")
    assert calls == [10, 20, 30, 10]


def test_merged_and_per_group_forwards_agree_with_per_sample_maps():
    from memo_zoo.train.step import prepare_inputs
    from tests.unit.test_latent_cache import NO_DROPOUT, clip_frames, keyed_batch
    from tests.unit.test_train_step import VAE, WINDOW, make_modules
    from memo_zoo.train.config import TimestepConfig

    frames = clip_frames()
    batch = keyed_batch(frames, 1)
    regions = ClipRegions({"mouth": [(0.0, 0.5, 0.5, 1.0), (0.5, 0.0, 1.0, 0.5), (0.25, 0.25, 0.75, 0.75)]},
                          {"mouth": 0})
    inputs = prepare_inputs(batch, VAE, torch.Generator().manual_seed(0), single_frame=False, use_audio=True,
                            timesteps=TimestepConfig(), dropout=NO_DROPOUT, motion_padding="drop",
                            audio_window=WINDOW, no_emotion=8, device=torch.device("cpu"), vae_batch=5,
                            loss_regions=[MEASURED], clip_regions=regions)
    clips = batch["target_keys"][:, 0, 0].tolist()
    weights = inputs["loss_weights"]
    assert weights.shape[0] == 3
    for b, clip in enumerate(clips):
        own = MEASURED.model_copy(update={"box": regions.boxes["mouth"][clip], "source": "box"})
        torch.testing.assert_close(weights[b], region_weight_map([own], *weights.shape[-2:]))
    modules = make_modules()
    modules.eval()
    merged = modules(inputs)
    modules.merge_groups = False
    torch.testing.assert_close(modules(inputs), merged, rtol=1e-5, atol=1e-6)


def test_a_measured_region_needs_a_name_and_keeps_old_training_keys():
    with pytest.raises(ValidationError, match="margin"):
        LossRegion(name="mouth", box=(0.2, 0.5, 0.8, 0.8), weight=2, source="landmarks", margin=-1)
    plain = TrainConfig(loss_regions=[{"name": "mouth", "box": [0.28, 0.5, 0.72, 0.8], "weight": 8}])
    document = train_key_document(plain)
    assert document["loss_regions"] == [{"name": "mouth", "box": [0.28, 0.5, 0.72, 0.8], "weight": 8.0}]
    measured = TrainConfig(loss_regions=[MEASURED])
    assert train_key_document(measured)["loss_regions"][0]["source"] == "landmarks"


def test_on_the_real_photo_tier_the_measured_box_holds_the_mouth(tmp_path):
    pytest.importorskip("dlib")
    real_photo = pytest.importorskip("memo_zoo_plugins.datasets.talking_world.real_photo")
    from memo_zoo.train.regions import landmark_measurer
    from memo_zoo_plugins.datasets.talking_world.face import FaceState

    size = 64
    states = [FaceState(mouth_open=v) for v in (0.0, 0.4, 0.8, 0.2)]
    frames = np.stack([real_photo.render_photo(state, size) for state in states])
    measure, kind = landmark_measurer()
    box = measure(frames, MEASURED.model_copy(update={"sample_every": 1}))
    assert box is not None, kind
    rest = real_photo.photo_landmarks(FaceState(), size)
    for name in ("mouth_left", "mouth_right", "upper_lip", "lower_lip"):
        x, y = np.asarray(rest[name]) / size
        assert box[0] < x < box[2] and box[1] < y < box[3], (name, box, kind)
    assert measure(np.full((3, size, size, 3), 128, np.uint8), MEASURED) is None  # no face: no box
