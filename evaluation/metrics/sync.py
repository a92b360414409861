"""``metrics: [{kind: sync}]``: Sync-C and Sync-D with SyncNet (spec §8, Table 1; LSE-C / LSE-D).

The network, its inputs, the face crop and the offset search are the core's
(``memo_zoo.perception.syncnet``: the ``lip_sync_filter`` preprocessing stage uses them too); this
module is the metric: per video Sync-C (median minus minimum distance), Sync-D (the minimum) and
the AV offset, and the run's figures are their means (spec §8). With ``crop_mode: tracked`` (the
default when a ``face_detector`` is set) each video also reports ``face_tracked``: 1 when its
crops followed a face track as the reference pipeline's do, 0 when it fell back to the fixed square.
"""

from __future__ import annotations

import numpy as np

from memo_zoo.errors import MemoZooError
from memo_zoo.eval.protocol import (MetricResult, PerVideoMerge, VideoSample, check_new_video, mean_of,
                                    resolve_device)
# Re-exported: the network, its loader and its features are what a user of this metric reaches for.
from memo_zoo.perception.syncnet import (WHAT, WINDOW_FRAMES, SyncNet, SyncNetEvaluator,  # noqa: F401
                                         SyncNetOptions, load_syncnet, mfcc, resample_frames)
from memo_zoo.weights import resolve_weights
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_eval.metrics.configs import SyncConfig


class SyncMetric(PerVideoMerge):
    """Shardable over workers: its state is its per-video rows (``PerVideoMerge``)."""

    name = "sync"

    def __init__(self, config: SyncConfig):
        self.config = config
        self.evaluator: SyncNetEvaluator | None = None
        self.per_video: dict[str, dict[str, float]] = {}

    def prepare(self) -> None:
        if self.evaluator is None:
            path = resolve_weights(self.config.weights, WHAT)
            self.evaluator = SyncNetEvaluator(load_syncnet(path), self.config, resolve_device(self.config.device))

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> None:
        self.prepare()
        check_new_video(self.name, self.per_video, generated.id)
        if generated.audio is None:
            raise MemoZooError(f"sync: video {generated.id!r} has no audio to check the lips against")
        result = self.evaluator.search(generated.frames, generated.audio, generated.fps)
        figures = {"sync_c": result.confidence, "sync_d": result.min_distance, "av_offset": float(result.av_offset)}
        if self.config.crop_mode == "tracked":
            # 0: no face track was kept (too short, too small, no face), the fixed square was used instead
            figures["face_tracked"] = float(self.evaluator.last_tracked)
        self.per_video[generated.id] = figures

    def compute(self) -> MetricResult:
        if not self.per_video:
            raise MemoZooError("sync: no video measured")
        summary = {key: mean_of(self.per_video, key) for key in ("sync_c", "sync_d")}
        summary["abs_av_offset"] = float(np.mean([abs(v["av_offset"]) for v in self.per_video.values()]))
        return MetricResult(per_video={k: dict(v) for k, v in self.per_video.items()}, summary=summary)

    def reset(self) -> None:
        self.per_video = {}


def build(config: SyncConfig) -> SyncMetric:
    return SyncMetric(config)
