"""The release's Reference Net (A2): an SD1.5-shaped 2-D UNet that only records features.

It is ``memo.models.unet_2d_condition.UNet2DConditionModel`` rebuilt with the same parameter names
(diffusers' ``ResnetBlock2D``, ``Downsample2D``, ``Upsample2D``; :mod:`.spatial`'s transformers):
no ``conv_norm_out`` / ``conv_out``, and the last transformer (``up_blocks.-1.attentions.-1``)
stops after its ``norm1`` (golden README, "Notes on the manifest").

``forward`` returns what the released pipeline hands to the Diffusion Net (Q13), as one ordered
dict whose names flatten the release's nested ``{"down": [...], "mid": [...], "up": [...]}``:

* ``down.<i>.<j>.0`` / ``mid.0.0.0`` / ``up.<i>.<j>.0``: the ``norm1`` output (N, H*W, C) of layer j's
  transformer at level i (the trailing ``.0``: the transformer's only block);
* ``down.<i>.<j>`` / ``up.<i>.<j>``: the output (N, C, H, W) of resnet j of a level without
  transformers (``DownBlock2D`` / ``UpBlock2D``).

Image tokens (Q11): the release tiles the B rows of ``encoder_hidden_states`` over the N input
rows (``ehs.repeat(N // B)``, row n reads ``ehs[n % B]``), which gives half the past frames the
other branch's tokens. ``released_quirks=True`` reproduces that; the default gives each video's
consecutive N // B rows their own video's tokens (``repeat_interleave``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from torch import Tensor, nn

from memo_zoo.model.released.spatial import ReleasedSpatialTransformer
from memo_zoo.model.released.unet_config import ReleasedReferenceNetConfig


def released_timesteps(timestep: Tensor | float, rows: int, device: torch.device) -> Tensor:
    """A scalar or (rows,) timestep as the release feeds it to ``Timesteps``: float, one per row (Q14)."""
    t = torch.as_tensor(timestep, device=device)
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if t.dim() == 0:
        t = t[None]
    if t.dim() != 1 or t.shape[0] not in (1, rows):
        raise ValueError(f"timestep must be a scalar or ({rows},); got {tuple(t.shape)}")
    return t.expand(rows)


class _Level(nn.Module):
    """One down or up level: ``resnets``, optional ``attentions``, optional resampler."""

    def __init__(self) -> None:
        super().__init__()
        self.resnets = nn.ModuleList()
        self.attentions: nn.ModuleList | None = None


class ReleasedReferenceNet(nn.Module):
    """The release's ``reference_net`` (A2), parameter names identical to the checkpoint."""

    def __init__(self, config: ReleasedReferenceNetConfig, *, released_quirks: bool = False) -> None:
        super().__init__()
        self.config = config
        self.released_quirks = released_quirks
        cfg = config
        widths = cfg.block_out_channels
        heads = cfg.heads_per_level
        temb = cfg.time_embed_dim
        levels = len(widths)
        resnet = dict(temb_channels=temb, eps=cfg.norm_eps, groups=cfg.norm_num_groups, dropout=cfg.dropout,
                      time_embedding_norm="default", non_linearity="silu")
        spatial = dict(cross_dim=cfg.cross_attention_dim, groups=cfg.norm_num_groups,
                       upcast_attention=cfg.upcast_attention, dropout=cfg.dropout)

        self.conv_in = nn.Conv2d(cfg.in_channels, widths[0], cfg.conv_in_kernel, padding=(cfg.conv_in_kernel - 1) // 2)
        self.time_proj = Timesteps(widths[0], cfg.flip_sin_to_cos, cfg.freq_shift)
        self.time_embedding = TimestepEmbedding(widths[0], temb)

        self.down_blocks = nn.ModuleList()
        out = widths[0]
        for i, kind in enumerate(cfg.down_block_types):
            level, inp, out = _Level(), out, widths[i]
            for j in range(cfg.layers_per_block):
                level.resnets.append(ResnetBlock2D(in_channels=inp if j == 0 else out, out_channels=out, **resnet))
            if kind == "CrossAttnDownBlock2D":
                level.attentions = nn.ModuleList(
                    ReleasedSpatialTransformer(out, heads[i], **spatial) for _ in range(cfg.layers_per_block))
            if i < levels - 1:
                level.downsamplers = nn.ModuleList(
                    [Downsample2D(out, use_conv=True, out_channels=out, padding=cfg.downsample_padding, name="op")])
            self.down_blocks.append(level)

        self.mid_block = _Level()
        for _ in range(2):
            self.mid_block.resnets.append(ResnetBlock2D(in_channels=widths[-1], out_channels=widths[-1],
                                                        output_scale_factor=cfg.mid_block_scale_factor, **resnet))
        self.mid_block.attentions = nn.ModuleList([ReleasedSpatialTransformer(widths[-1], heads[-1], **spatial)])

        self.up_blocks = nn.ModuleList()
        rev_widths, rev_heads = widths[::-1], heads[::-1]
        out = rev_widths[0]
        for i, kind in enumerate(cfg.up_block_types):
            level, prev, out = _Level(), out, rev_widths[i]
            skip_in = rev_widths[min(i + 1, levels - 1)]
            layers = cfg.layers_per_block + 1
            last = i == levels - 1
            for j in range(layers):
                skip = skip_in if j == layers - 1 else out
                level.resnets.append(ResnetBlock2D(in_channels=(prev if j == 0 else out) + skip, out_channels=out,
                                                   **resnet))
            if kind == "CrossAttnUpBlock2D":
                level.attentions = nn.ModuleList(
                    ReleasedSpatialTransformer(out, rev_heads[i], final=last and j == layers - 1, **spatial)
                    for j in range(layers))
            if not last:
                level.upsamplers = nn.ModuleList([Upsample2D(out, use_conv=True, out_channels=out)])
            self.up_blocks.append(level)

    def _context_rows(self, image_tokens: Tensor, rows: int) -> Tensor:
        b = image_tokens.shape[0]
        if rows % b:
            raise ValueError(f"{rows} input rows are not a multiple of the {b} image-token rows")
        if self.released_quirks:
            return image_tokens.repeat(rows // b, 1, 1)  # Q11: tiled, row n reads ehs[n % B]
        return image_tokens.repeat_interleave(rows // b, dim=0)

    def forward(self, sample: Tensor, timestep: Tensor | float, image_tokens: Tensor) -> "OrderedDict[str, Tensor]":
        """Reference features of ``sample`` (N, c, h, w) (A2, Q13); see the module docstring.

        timestep:     the release passes 0 (``zeros_like(t)``), a scalar or (N,).
        image_tokens: (B, K, cross_dim) with N a multiple of B: B videos of N // B consecutive rows.
        """
        cfg = self.config
        if sample.dim() != 4 or sample.shape[1] != cfg.in_channels:
            raise ValueError(f"sample must be (N, {cfg.in_channels}, h, w); got {tuple(sample.shape)}")
        if image_tokens.dim() != 3 or image_tokens.shape[2] != cfg.cross_attention_dim:
            raise ValueError(f"image tokens must be (B, K, {cfg.cross_attention_dim}); got {tuple(image_tokens.shape)}")
        n = sample.shape[0]
        context = self._context_rows(image_tokens, n)
        if cfg.center_input_sample:
            sample = 2 * sample - 1.0
        emb = self.time_embedding(self.time_proj(released_timesteps(timestep, n, sample.device)).to(sample.dtype))

        factor = 2 ** (len(self.up_blocks) - 1)
        upsample_size = None
        forward_size = any(s % factor for s in sample.shape[-2:])

        features: OrderedDict[str, Tensor] = OrderedDict()
        x = self.conv_in(sample)
        skips = [x]
        for i, level in enumerate(self.down_blocks):
            for j, resnet in enumerate(level.resnets):
                x = resnet(x, emb)
                if level.attentions is not None:
                    x, features[f"down.{i}.{j}.0"] = level.attentions[j].reference_forward(x, context)
                else:
                    features[f"down.{i}.{j}"] = x
                skips.append(x)
            if hasattr(level, "downsamplers"):
                x = level.downsamplers[0](x)
                skips.append(x)

        mid = self.mid_block
        x = mid.resnets[0](x, emb)
        x, features["mid.0.0.0"] = mid.attentions[0].reference_forward(x, context)
        x = mid.resnets[1](x, emb)

        for i, level in enumerate(self.up_blocks):
            last = i == len(self.up_blocks) - 1
            if not last and forward_size:
                upsample_size = skips[-len(level.resnets) - 1].shape[2:]
            for j, resnet in enumerate(level.resnets):
                x = resnet(torch.cat([x, skips.pop()], dim=1), emb)
                if level.attentions is not None:
                    x, features[f"up.{i}.{j}.0"] = level.attentions[j].reference_forward(x, context)
                    if x is None:  # the final transformer: nothing after it is computed (A2)
                        break
                else:
                    features[f"up.{i}.{j}"] = x
            if x is not None and hasattr(level, "upsamplers"):
                x = level.upsamplers[0](x, upsample_size)
        return features
