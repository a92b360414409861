"""The ``background`` metric (memo_zoo_eval.metrics.background; spec I1, T6): corner colours against a
slow pixel loop, its figures on videos with a planted background walk, and its registration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memo_zoo.errors import MemoZooError
from memo_zoo_eval.metrics.background import BackgroundConfig, build, corner_colour
from memo_zoo.eval.protocol import VideoSample, end_windows
from memo_zoo.slots.metric import Metric

CORNERS = ["top_left", "top_right", "bottom_left", "bottom_right"]


def slow_corner_colour(frame: np.ndarray, corners: list[str], corner: float) -> np.ndarray:
    """Mean RGB of the corner squares, one pixel at a time."""
    h, w = frame.shape[:2]
    sh, sw = max(1, int(round(corner * h))), max(1, int(round(corner * w)))
    total, count = np.zeros(3), 0
    for name in corners:
        row, col = name.split("_")
        for y in range(h):
            for x in range(w):
                inside_y = y < sh if row == "top" else y >= h - sh
                inside_x = x < sw if col == "left" else x >= w - sw
                if inside_y and inside_x:
                    total += frame[y, x]
                    count += 1
    return total / count


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 20), w=st.integers(1, 20), corner=st.sampled_from([0.05, 0.15, 0.5]),
       chosen=st.lists(st.sampled_from(CORNERS), min_size=1, max_size=4, unique=True), seed=st.integers(0, 2**16))
def test_corner_colour_matches_a_pixel_loop(h, w, corner, chosen, seed):
    frames = np.random.default_rng(seed).integers(0, 256, (2, h, w, 3)).astype(np.uint8)
    fast = corner_colour(frames, chosen, corner)
    for i in range(2):
        np.testing.assert_allclose(fast[i], slow_corner_colour(frames[i], chosen, corner), atol=1e-9)


def portrait(background=(136, 157, 192), face=(200, 150, 120), size=32) -> np.ndarray:
    """A flat background with a face-coloured disc in the centre, below the top corners."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    y, x = np.mgrid[:size, :size]
    image[(y - size * 0.6) ** 2 + (x - size / 2) ** 2 < (size * 0.3) ** 2] = face
    return image


def walking_video(frames: int, step: float, fps: float = 25.0) -> tuple[VideoSample, np.ndarray]:
    """Frame i: the portrait with its background's red channel raised by i * step (the face moves too)."""
    image = portrait()
    video = np.repeat(image[None], frames, axis=0).astype(np.float64)
    walk = np.arange(frames) * step
    background = np.all(video == np.array([136, 157, 192]), axis=-1)
    video[..., 0] += background * walk[:, None, None]
    video[:, 20:28, 10:22] = np.random.default_rng(0).integers(0, 256, (frames, 8, 12, 3))  # a talking mouth
    return VideoSample(id="walk", frames=np.clip(video, 0, 255).astype(np.uint8), fps=fps,
                       reference_image=image), walk


def test_a_background_that_walks_gives_its_distance_over_time():
    metric = build(BackgroundConfig(window_seconds=1.0))
    generated, walk = walking_video(100, 0.5)
    metric.update(generated)
    result = metric.compute()
    series = result.series["walk"]["background_error"]
    # Only the red channel moves, so the RGB distance is the walk itself (rounded to whole pixels).
    np.testing.assert_allclose(series, np.floor(walk), atol=1e-9)
    figures = result.per_video["walk"]
    assert figures["background_error"] == pytest.approx(series.mean())
    assert figures["background_error_first"] == pytest.approx(series[:25].mean())
    assert figures["background_error_last"] == pytest.approx(series[-25:].mean())
    assert figures["background_error_drift"] == pytest.approx(series[-25:].mean() - series[:25].mean())
    assert figures["background_error_drift"] > 0 and figures["background_error_window"] == 25


def test_the_face_and_mouth_do_not_count_and_a_kept_background_scores_zero():
    metric = build(BackgroundConfig())
    generated, _ = walking_video(30, 0.0)
    metric.update(generated)
    figures = metric.compute().per_video["walk"]
    assert figures["background_error"] == 0 and figures["background_error_drift"] == 0


def test_the_reference_image_falls_back_to_the_ground_truth_video():
    image = portrait()
    shifted = image.copy()
    shifted[:] = (146, 157, 192)
    generated = VideoSample(id="v", frames=np.repeat(shifted[None], 10, 0), fps=25.0)
    truth = VideoSample(id="v", frames=np.repeat(image[None], 10, 0), fps=25.0)
    metric = build(BackgroundConfig())
    metric.update(generated, truth)
    assert metric.compute().per_video["v"]["background_error"] == pytest.approx(10.0)
    metric.reset()
    with pytest.raises(MemoZooError, match="background: video 'v' has no reference image"):
        metric.update(generated)


def test_summaries_are_means_over_videos_and_a_video_is_measured_once():
    metric = build(BackgroundConfig())
    a, _ = walking_video(20, 0.0)
    b, _ = walking_video(20, 1.0)
    metric.update(a)
    metric.update(VideoSample(id="b", frames=b.frames, fps=b.fps, reference_image=b.reference_image))
    result = metric.compute()
    assert result.summary["background_error"] == pytest.approx(
        (result.per_video["walk"]["background_error"] + result.per_video["b"]["background_error"]) / 2)
    with pytest.raises(ValueError, match="already measured"):
        metric.update(a)
    metric.reset()
    with pytest.raises(MemoZooError, match="no video measured"):
        metric.compute()


@pytest.mark.parametrize("count,expected", [(100, 25), (30, 8), (2, 1)])
def test_end_windows_never_overlap(count, expected):
    values = np.arange(count, dtype=np.float64)
    first, last, window = end_windows(values, 25.0, 1.0, 0.25)
    assert window == expected and 2 * window <= count
    assert first == pytest.approx(values[:window].mean()) and last == pytest.approx(values[-window:].mean())


def test_registered_with_described_options_and_bad_ones_named(registry):
    spec = registry.components["metric"]["background"].spec
    assert spec.config is BackgroundConfig and spec.summary
    assert all(field.description for field in BackgroundConfig.model_fields.values())
    assert isinstance(spec.factory(BackgroundConfig()), Metric)
    with pytest.raises(Exception, match="corners"):
        BackgroundConfig(corners=["middle"])
    with pytest.raises(Exception, match="corner"):
        BackgroundConfig(corner=0.9)
