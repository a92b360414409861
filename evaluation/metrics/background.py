"""``metrics: [{kind: background}]``: does a video keep its portrait's background colour? (spec I1, T6)

A portrait animation should keep the portrait's background, and a long autoregressive one must
not let it drift: each clip's context is the net's previous clip (T6), so a colour error compounds
clip by clip. Face-centred crops (memo-zoo's data pipeline, talking_world) show background in the
frame's top corners. Per frame, this metric takes the mean RGB (0-255) of the chosen corner
squares and its Euclidean distance to the same colour of the reference image (the portrait):

- ``background_error``: the mean distance over the video;
- ``background_error_first`` / ``background_error_last``: the mean over the first / last
  ``window_seconds`` (a ``window_fraction`` of the frames each when the video is shorter than two
  windows): the first says whether the first clip copied the portrait's background, the last
  where a long video ended up;
- ``background_error_drift`` = last - first (positive: the background walks away from the
  portrait's over the video).

Series: ``background_error`` (per frame). It needs no network and no weights. The reference image
is the video's ``reference_image``, else its ground-truth video's, else that video's first frame.
Where the corners show the head or a moving scene, the figure measures those instead: choose
``corners`` that show background in the dataset's crops.
"""

from __future__ import annotations


import numpy as np

from memo_zoo.eval.protocol import PerVideoFigures, VideoSample, check_new_video, end_windows, reference_image_of
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_eval.metrics.configs import BackgroundConfig, Corner  # noqa: F401


def corner_colour(frames: np.ndarray, corners: list[str], corner: float) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3) float64: the mean RGB over the ``corners`` squares of side
    ``corner`` x height by ``corner`` x width (at least one pixel each)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3), got {frames.shape}")
    h, w = frames.shape[1:3]
    sh, sw = max(1, int(round(corner * h))), max(1, int(round(corner * w)))
    rows = {"top": slice(0, sh), "bottom": slice(h - sh, h)}
    cols = {"left": slice(0, sw), "right": slice(w - sw, w)}
    squares = []
    for name in corners:
        row, col = name.split("_")
        squares.append(frames[:, rows[row], cols[col]].reshape(len(frames), -1, 3))
    return np.concatenate(squares, axis=1).astype(np.float64).mean(axis=1)


def background_figures(error: np.ndarray, fps: float, window_seconds: float,
                       window_fraction: float) -> dict[str, float]:
    """Per-video figures from the per-frame distances (module docstring)."""
    first, last, window = end_windows(error, fps, window_seconds, window_fraction)
    return {"background_error": float(error.mean()), "background_error_first": first,
            "background_error_last": last, "background_error_drift": last - first,
            "background_error_window": float(window)}


class BackgroundMetric(PerVideoFigures):
    """series: ``background_error`` (RGB distance to the portrait's corners, per frame)."""

    name = "background"

    def __init__(self, config: BackgroundConfig):
        super().__init__()
        self.config = config

    def prepare(self) -> None:
        """Nothing to load: the metric has no network."""

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> None:
        check_new_video(self.name, self.per_video, generated.id)
        c = self.config
        image = reference_image_of(self.name, generated, reference)
        anchor = corner_colour(image[None], c.corners, c.corner)[0]
        error = np.linalg.norm(corner_colour(generated.frames, c.corners, c.corner) - anchor, axis=1)
        self.record(generated.id, background_figures(error, generated.fps, c.window_seconds, c.window_fraction),
                    {"background_error": error})


def build(config: BackgroundConfig) -> BackgroundMetric:
    return BackgroundMetric(config)
