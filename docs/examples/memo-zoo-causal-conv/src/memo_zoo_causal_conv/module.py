"""The causal temporal convolution and its config.

Each spatial position mixes its features over the current frame and the ``kernel_size - 1``
frames before it with a depthwise 1-D convolution; the frames before the clip come from the
caller-owned context (the last motion frames), so clip after clip it sees exactly what one long
convolution would. Residual with a zero-initialised output projection: a new module is the
identity, as memo-zoo's temporal slot requires (spec A6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn


class CausalConvConfig(BaseModel):
    """Options of the causal_conv temporal component."""

    model_config = ConfigDict(extra="forbid")

    kernel_size: int = Field(3, ge=1, le=64, description="frames each output frame looks at (itself included)")


@dataclass(frozen=True)
class PastFrames:
    """The last ``kernel_size - 1`` motion frames, (B, K-1, C, H, W); empty at the start."""

    frames: Tensor


class CausalTemporalConv(nn.Module):
    def __init__(self, config: CausalConvConfig, channels: int):
        super().__init__()
        self.kernel_size = config.kernel_size
        self.channels = channels
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, config.kernel_size, groups=channels)
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def new_context(self, batch: int) -> PastFrames:
        return PastFrames(torch.zeros(batch, 0, self.channels, 1, 1))

    def update_context(self, ctx: PastFrames, motion: Tensor) -> PastFrames:
        keep = self.kernel_size - 1
        past = ctx.frames
        if past.shape[1] == 0:  # the empty context has no spatial size yet
            past = motion[:, :0]
        joined = torch.cat([past.to(motion.dtype), motion], dim=1)
        return PastFrames(joined[:, max(joined.shape[1] - keep, 0):] if keep else joined[:, :0])

    def forward(self, x: Tensor, ctx: PastFrames | None = None) -> Tensor:
        b, f, c, h, w = x.shape
        past = ctx.frames if ctx is not None and ctx.frames.shape[1] else x[:, :0]
        frames = torch.cat([past.to(x.dtype), x], dim=1)
        tokens = self.norm(frames.permute(0, 3, 4, 1, 2).reshape(b * h * w, -1, c))
        # Left zero-padding up to kernel_size - 1 frames keeps the convolution causal.
        missing = self.kernel_size - 1 - past.shape[1]
        signal = F.pad(tokens.transpose(1, 2), (max(missing, 0), 0))
        mixed = self.conv(signal).transpose(1, 2)[:, -f:]
        out = self.proj_out(mixed).reshape(b, h, w, f, c).permute(0, 3, 4, 1, 2)
        return x + out


def build(config: CausalConvConfig, channels: int) -> CausalTemporalConv:
    return CausalTemporalConv(config, channels)
