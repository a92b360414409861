"""The release's video resnet (``memo.models.resnet.ResnetBlock3D``) on frames folded into the batch.

Convolutions act per frame (the release's ``InflatedConv3d`` is a 2-D conv over ``(b f)``), so the
video (B, C, F, H, W) is kept here as B*F rows (N, C, H, W), ordered (b f). The only place the
frames meet is the GroupNorm, and the released config chooses how (Q9,
``use_inflated_groupnorm``):

* True: per frame (the release's ``InflatedGroupNorm``), i.e. GroupNorm on the rows;
* False: ``nn.GroupNorm`` on the 5-D video, statistics pooled over all F frames of a video
  (:func:`video_group_norm`).

Parameter names (``norm1``, ``conv1``, ``time_emb_proj``, ``norm2``, ``conv2``, ``conv_shortcut``)
are the checkpoint's.
"""

from __future__ import annotations

from torch import Tensor, nn


def video_group_norm(norm: nn.GroupNorm, x: Tensor, frames: int, per_frame: bool) -> Tensor:
    """``norm`` on rows (N = B*F, C, H, W): per frame, or pooled over each video's frames (Q9)."""
    if per_frame:
        return norm(x)
    n, c, h, w = x.shape
    video = x.reshape(n // frames, frames, c, h, w).transpose(1, 2)  # (B, C, F, H, W), as the release
    return norm(video).transpose(1, 2).reshape(n, c, h, w)


class ReleasedResnet3D(nn.Module):
    """Pre-norm resnet with a time embedding, per-frame convolutions and a choice of GroupNorm (Q9)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, *, groups: int, eps: float,
                 per_frame_norm: bool, output_scale_factor: float = 1.0) -> None:
        super().__init__()
        self.per_frame_norm = per_frame_norm
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor, temb: Tensor, frames: int) -> Tensor:
        """x (B*F, C, H, W), temb (B, T): one time embedding per video, shared by its frames."""
        h = self.conv1(self.act(video_group_norm(self.norm1, x, frames, self.per_frame_norm)))
        h = h + self.time_emb_proj(self.act(temb)).repeat_interleave(frames, dim=0)[:, :, None, None]
        h = self.conv2(self.act(video_group_norm(self.norm2, h, frames, self.per_frame_norm)))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return (skip + h) / self.output_scale_factor
