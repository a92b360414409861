"""``metrics: [{kind: fvd}]``: Frechet Video Distance of 16-frame clips (spec §8, Table 1 "FVD").

Each video is cut into clips of ``clip_length`` frames (16), taking every ``frame_step``-th frame,
clips starting every ``clip_stride`` frames (16: back to back), at most ``max_clips_per_video``
spread evenly over the video; a video shorter than one clip gives none. A clip's feature is the
400-d output of the Kinetics-400 I3D before its softmax ("raw features", as in the original FVD
code); FVD is the Frechet distance between the clips of the generated videos and those of the
ground truth (or a ``reference_stats`` .npz), by ``memo_zoo.eval.frechet``.

Network: the standard TorchScript I3D, ``i3d_torchscript.pt`` (the StyleGAN-V port of the
TF-Hub I3D used by the original FVD code; its authors checked that it matches the TF model), from
a local file. Its call is ``net(videos, rescale=..., resize=..., return_features=True)`` on float32
videos (N, 3, T, H, W) RGB. Two ways to feed it (``resize_in_network``):

- ``true`` (default): frames as float in [0, 255] at their own size, with ``rescale=True,
  resize=True``: the network scales to [-1, 1] and resizes to 224x224 itself. This is the call
  of StyleGAN-V's FVD (and of the many video papers that use its code).
- ``false``: memo-zoo resizes the frames to ``size`` x ``size`` (224; bilinear, antialias) and
  scales them to [-1, 1], and calls with ``rescale=False, resize=False``: the input contract of
  the original TF FVD code (videos in [-1, 1] at 224).

What could not be checked here, without the file (it cannot be downloaded on this machine): the
exact resize the network does inside with ``resize=True``, and that the output is 400-d. The tests
run the whole path on a small TorchScript module with the same signature.
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from memo_zoo.errors import MemoZooError
from memo_zoo.weights import resolve_weights
from memo_zoo.eval.frechet import FrechetMetric
from memo_zoo.eval.protocol import DTYPES, VideoSample, resolve_device
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_eval.metrics.configs import FvdConfig

WHAT = "FVD I3D network (TorchScript i3d_torchscript.pt)"


def clip_starts(frames: int, length: int, stride: int, step: int, max_clips: int | None) -> list[int]:
    """First frame of each clip that fits in ``frames``; at most ``max_clips``, evenly spread."""
    span = (length - 1) * step + 1
    starts = list(range(0, frames - span + 1, stride))
    if max_clips is not None and len(starts) > max_clips:
        starts = [starts[i] for i in np.linspace(0, len(starts) - 1, max_clips).round().astype(int)]
    return starts


class FvdMetric(FrechetMetric):
    name = "fvd"
    unit = "clips"
    stats_what = "reference statistics (.npz with mu, sigma of I3D clip features)"

    def __init__(self, config: FvdConfig):
        self.config = config
        self._net = None
        self.device = torch.device("cpu")
        super().__init__(config.reference_stats, config.per_video_distance)

    def _load(self) -> None:
        path = resolve_weights(self.config.weights, WHAT)
        if path.is_dir():
            raise MemoZooError(f"fvd: {path} is a folder; give the TorchScript file")
        self.device = resolve_device(self.config.device)
        try:
            net = torch.jit.load(str(path), map_location=self.device)
        except Exception as error:  # noqa: BLE001 - corrupt files fail in format-specific ways
            raise MemoZooError(f"fvd: {path} is not a TorchScript file (torch.jit.save): {error}") from None
        self._net = net.eval().to(DTYPES[self.config.dtype])

    @torch.no_grad()
    def features(self, sample: VideoSample) -> np.ndarray:
        c = self.config
        starts = clip_starts(len(sample.frames), c.clip_length, c.clip_stride, c.frame_step, c.max_clips_per_video)
        out = []
        for first in range(0, len(starts), c.batch_size):
            index = np.array([[s + i * c.frame_step for i in range(c.clip_length)]
                              for s in starts[first:first + c.batch_size]])
            clips = torch.from_numpy(sample.frames[index.reshape(-1)]).to(self.device)  # (B * T, H, W, 3)
            clips = clips.permute(0, 3, 1, 2).float()
            if c.resize_in_network:
                rescale = resize = True
            else:
                clips = F.interpolate(clips, size=(c.size, c.size), mode="bilinear", align_corners=False,
                                      antialias=True) / 127.5 - 1.0
                rescale = resize = False
            clips = clips.reshape(len(index), c.clip_length, 3, *clips.shape[-2:]).permute(0, 2, 1, 3, 4)
            features = self._net(clips.to(DTYPES[c.dtype]).contiguous(), rescale=rescale, resize=resize,
                                 return_features=True)
            out.append(features.float().cpu())
        if not out:  # shorter than one clip: this video adds nothing to the distribution
            return np.zeros((0, 0))
        return torch.cat(out).double().numpy()


def build(config: FvdConfig) -> FvdMetric:
    return FvdMetric(config)
