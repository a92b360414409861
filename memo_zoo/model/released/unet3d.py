"""The release's Diffusion Net (A3): ``memo.models.unet_3d.UNet3DConditionModel`` in the zoo.

Same parameter names as the released checkpoint, so its ``diffusion_net`` loads strictly. Its
parts, in the release's order per layer (golden README Q5-Q13):

* down / up levels with transformers: resnet -> spatial transformer -> audio module -> motion module;
* mid: resnet, then spatial transformer -> audio module -> motion module -> resnet;
* levels without transformers: resnet -> motion module.

Resnets (:mod:`.resnet3d`) norm per frame or pooled over frames (``use_inflated_groupnorm``,
Q9). Spatial transformers (:mod:`.spatial`) attend over [own tokens ; the reference image's
tokens] except in rows marked unconditional (Q10), and cross-attend to the image tokens. The
audio and motion modules are components: the net receives factories
(``memo_zoo.slots.audio_fusion.AudioFusionFactory``, ``memo_zoo.slots.temporal.TemporalFactory``)
and builds one per site, the audio module with the release's per-site attention width (Q6:
``inner_channels``), heads, GroupNorm groups and ``final`` for the last one; the audio stream is
threaded down -> mid -> up, each module reading the previous one's output (Q7).

Reference features (A2, Q13) come from :class:`~memo_zoo.model.released.reference_unet.ReleasedReferenceNet`
run on B videos of [reference image, Fm motion frames]: at a transformer site its row 0 per video
gives the reference-image tokens of the spatial attention, and rows 1..Fm (norm1 outputs, or resnet
outputs at levels without transformers) are the site's motion frames.

Temporal state (T6), as in the zoo's :class:`~memo_zoo.model.diffusion_net.DiffusionNet`:
``new_state(B)``, ``update_state(state, motion_features(reference, B, size))`` once per clip, and
``forward(..., state=state)`` at every step, reading it. The release's flags map onto it:
``is_new_audio`` (clip 0) = fresh state + one update; ``update_past_memory`` (step 0 of a later
clip) = one update; the other steps only read.

``released_quirks=True`` reproduces Q12: the release tiles the B reference-image token sets over
the B*F rows (``repeat``), so row n = b*F + f reads video ``n % B``'s tokens; the default gives each
row its own video's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Downsample2D, Upsample2D
from torch import Tensor, nn

from memo_zoo.model.released.reference_unet import released_timesteps
from memo_zoo.model.released.resnet3d import ReleasedResnet3D, video_group_norm
from memo_zoo.model.released.spatial import ReleasedSpatialTransformer
from memo_zoo.model.released.unet_config import ReleasedUNet3DConfig
from memo_zoo.slots.audio_fusion import AudioFusionFactory
from memo_zoo.slots.slot import call_factory
from memo_zoo.slots.temporal import TemporalFactory


@dataclass(frozen=True)
class ReleasedState:
    """The motion modules' contexts for B videos, one per motion site in site order (T6).

    Immutable: ``update_state`` returns a new one, so every step of a clip reads the same state.
    """

    batch: int
    contexts: tuple[Any, ...]


@dataclass(frozen=True)
class MotionSite:
    """Where a motion module sits: its parameter prefix, the reference feature that feeds it
    (Q13), its width and its level (how many times the latents were halved to get there)."""

    prefix: str
    feature: str
    channels: int
    level: int


class _Level(nn.Module):
    """One level of the 3-D UNet; attribute names are the checkpoint's."""

    def __init__(self) -> None:
        super().__init__()
        self.resnets = nn.ModuleList()
        self.attentions: nn.ModuleList | None = None
        self.audio_modules: nn.ModuleList | None = None
        self.motion_modules = nn.ModuleList()


class ReleasedDiffusionNet(nn.Module):
    """The release's ``diffusion_net`` (A3); see the module docstring."""

    def __init__(self, config: ReleasedUNet3DConfig, temporal: TemporalFactory, audio_fusion: AudioFusionFactory,
                 *, released_quirks: bool = False) -> None:
        super().__init__()
        self.config = config
        self.released_quirks = released_quirks
        self.temporal_config = temporal.config
        self.audio_fusion_config = audio_fusion.config
        cfg = config
        widths, heads = cfg.block_out_channels, cfg.heads_per_level
        levels = len(widths)
        temb = cfg.time_embed_dim
        resnet = dict(groups=cfg.norm_num_groups, eps=cfg.norm_eps, per_frame_norm=cfg.use_inflated_groupnorm)
        spatial = dict(cross_dim=cfg.cross_attention_dim, groups=cfg.norm_num_groups,
                       upcast_attention=cfg.upcast_attention)
        self.motion_sites: list[MotionSite] = []

        def audio_module(channels: int, width_in: int, n_heads: int, final: bool = False) -> nn.Module:
            return call_factory(audio_fusion, {"channels": channels, "audio_dim": cfg.audio_attention_dim},
                                {"inner_channels": n_heads * (width_in // n_heads),  # Q6
                                 "final": final, "heads": n_heads, "norm_groups": cfg.norm_num_groups})

        def motion_module(level: _Level, prefix: str, feature: str, channels: int, depth: int, used: bool) -> None:
            if not used:
                level.motion_modules.append(None)
                return
            self.motion_sites.append(MotionSite(f"{prefix}.motion_modules.{len(level.motion_modules)}", feature,
                                                channels, depth))
            level.motion_modules.append(temporal(channels=channels))

        self.conv_in = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        self.time_proj = Timesteps(widths[0], cfg.flip_sin_to_cos, cfg.freq_shift)
        self.time_embedding = TimestepEmbedding(widths[0], temb)

        self.down_blocks = nn.ModuleList()
        out = widths[0]
        for i in range(levels):
            level, inp, out = _Level(), out, widths[i]
            crossattn = cfg.kind("down_block_types", i) == "CrossAttnDownBlock3D"
            uses_motion = 2**i in cfg.motion_module_resolutions
            if crossattn:
                level.attentions, level.audio_modules = nn.ModuleList(), nn.ModuleList()
            for j in range(cfg.layers_per_block):
                width_in = inp if j == 0 else out
                level.resnets.append(ReleasedResnet3D(width_in, out, temb, **resnet))
                if crossattn:
                    level.attentions.append(ReleasedSpatialTransformer(out, heads[i], **spatial))
                    level.audio_modules.append(audio_module(out, width_in, heads[i]))
                feature = f"down.{i}.{j}.0" if crossattn else f"down.{i}.{j}"
                motion_module(level, f"down_blocks.{i}", feature, out, i, uses_motion)
            if i < levels - 1:
                level.downsamplers = nn.ModuleList(
                    [Downsample2D(out, use_conv=True, out_channels=out, padding=cfg.downsample_padding, name="op")])
            self.down_blocks.append(level)

        mid, c = _Level(), widths[-1]
        mid_resnet = dict(resnet, output_scale_factor=cfg.mid_block_scale_factor)
        mid.resnets.extend([ReleasedResnet3D(c, c, temb, **mid_resnet), ReleasedResnet3D(c, c, temb, **mid_resnet)])
        mid.attentions = nn.ModuleList([ReleasedSpatialTransformer(c, heads[-1], **spatial)])
        mid.audio_modules = nn.ModuleList([audio_module(c, c, heads[-1])])
        motion_module(mid, "mid_block", "mid.0.0.0", c, levels - 1, True)  # the release always builds it
        self.mid_block = mid

        self.up_blocks = nn.ModuleList()
        rev_widths, rev_heads = widths[::-1], heads[::-1]
        out = rev_widths[0]
        for i in range(levels):
            level, prev, out = _Level(), out, rev_widths[i]
            skip_in = rev_widths[min(i + 1, levels - 1)]
            crossattn = cfg.kind("up_block_types", i) == "CrossAttnUpBlock3D"
            uses_motion = 2 ** (3 - i) in cfg.motion_module_resolutions  # the release's numbering
            layers = cfg.layers_per_block + 1
            if crossattn:
                level.attentions, level.audio_modules = nn.ModuleList(), nn.ModuleList()
            for j in range(layers):
                skip = skip_in if j == layers - 1 else out
                level.resnets.append(ReleasedResnet3D((prev if j == 0 else out) + skip, out, temb, **resnet))
                if crossattn:
                    level.attentions.append(ReleasedSpatialTransformer(out, rev_heads[i], **spatial))
                    # Q6: the width in is the skip width; Q7: the net's last layer is "final"
                    level.audio_modules.append(
                        audio_module(out, skip_in, rev_heads[i], final=i == levels - 1 and j == layers - 1))
                feature = f"up.{i}.{j}.0" if crossattn else f"up.{i}.{j}"
                motion_module(level, f"up_blocks.{i}", feature, out, levels - 1 - i, uses_motion)
            if i < levels - 1:
                level.upsamplers = nn.ModuleList([Upsample2D(out, use_conv=True, out_channels=out)])
            self.up_blocks.append(level)

        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, widths[0], eps=cfg.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(widths[0], cfg.out_channels, 3, padding=1)

    # ------------------------------------------------------------------ temporal state (T6)

    @property
    def motion_modules(self) -> list[nn.Module]:
        """The motion modules in site order (down, mid, up)."""
        return [self.get_submodule(site.prefix) for site in self.motion_sites]

    def new_state(self, batch: int) -> ReleasedState:
        """An empty state for ``batch`` videos (no motion frames seen)."""
        return ReleasedState(batch, tuple(m.new_context(batch) for m in self.motion_modules))

    def update_state(self, state: ReleasedState, motion_features: Sequence[Tensor]) -> ReleasedState:
        """Fold in one clip's motion frames, one (B, Fm, C, H, W) per motion site (T4, T6)."""
        modules = self.motion_modules
        if len(motion_features) != len(modules):
            raise ValueError(f"need motion features for {len(modules)} motion sites, got {len(motion_features)}")
        return ReleasedState(state.batch, tuple(
            m.update_context(ctx, motion) for m, ctx, motion in zip(modules, state.contexts, motion_features)))

    def level_sizes(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """(h, w) at each down level for latents of ``size`` (stride-2 convs with the config's padding)."""
        pad = self.config.downsample_padding
        sizes = [tuple(size)]
        for _ in range(len(self.down_blocks) - 1):
            sizes.append(tuple((s + 2 * pad - 3) // 2 + 1 for s in sizes[-1]))
        return sizes

    def motion_features(self, reference: Mapping[str, Tensor], batch: int, size: tuple[int, int]) -> list[Tensor]:
        """Each motion site's motion frames (B, Fm, C, H, W) from the reference features (Q13).

        ``reference`` is the Reference Net's output for B videos of [reference image, Fm motion
        frames] (N = B * (1 + Fm) rows); ``size`` is the latents' (h, w).
        """
        sizes = self.level_sizes(size)
        out = []
        for site in self.motion_sites:
            h, w = sizes[site.level]
            frames = self._video_rows(reference, site.feature, batch, h, w, site.channels)
            out.append(frames[:, 1:])
        return out

    @staticmethod
    def _video_rows(reference: Mapping[str, Tensor], name: str, batch: int, h: int, w: int, channels: int) -> Tensor:
        """Reference feature ``name`` as (B, 1 + Fm, C, H, W), from tokens (N, HW, C) or maps (N, C, H, W)."""
        if name not in reference:
            raise KeyError(f"reference features have no {name!r} (has: {', '.join(reference)})")
        f = reference[name]
        if f.shape[0] % batch:
            raise ValueError(f"reference feature {name!r} has {f.shape[0]} rows, not a multiple of batch {batch}")
        if f.dim() == 3:
            if f.shape[1:] != (h * w, channels):
                raise ValueError(f"reference feature {name!r} is {tuple(f.shape)}; expected (N, {h * w}, {channels})")
            return f.reshape(batch, -1, h, w, channels).permute(0, 1, 4, 2, 3)
        if f.dim() != 4 or f.shape[1:] != (channels, h, w):
            raise ValueError(f"reference feature {name!r} is {tuple(f.shape)}; expected (N, {channels}, {h}, {w})")
        return f.reshape(batch, -1, channels, h, w)

    # ------------------------------------------------------------------ forward

    def _reference_rows(self, reference: Mapping[str, Tensor] | None, name: str, batch: int, frames: int,
                        x: Tensor) -> Tensor | None:
        """The reference image's tokens at this site, one (HW, C) per row of ``x`` (Q12, Q13)."""
        if reference is None:
            return None
        n, c, h, w = x.shape
        image = self._video_rows(reference, name, batch, h, w, c)[:, 0]  # (B, C, H, W)
        tokens = image.flatten(2).transpose(1, 2)
        if self.released_quirks:
            return tokens.repeat(frames, 1, 1)  # Q12: row n reads video n % B
        return tokens.repeat_interleave(frames, dim=0)

    def forward(self, latents: Tensor, timestep: Tensor | float, image_tokens: Tensor, audio_tokens: Tensor,
                emotion: Tensor | None, reference: Mapping[str, Tensor] | None, state: ReleasedState | None = None,
                uncond: Tensor | None = None) -> Tensor:
        """Predicted velocity (B, F, c, h, w) of ``latents`` (B, F, c, h, w) (A3, L1).

        timestep:     the release's float timestep (Q14), a scalar or (B,).
        image_tokens: (B, K, cross_attention_dim), shared by the frames of a video (A4).
        audio_tokens: (B, F, T, audio_attention_dim) projected audio tokens (A5).
        emotion:      (B,) class per video, or None = the "no emotion" row (Q8, Q15).
        reference:    the Reference Net's features (see ``motion_features``), or None = spatial
                      attention without reference.
        state:        from ``new_state`` / ``update_state``; None = empty.
        uncond:       (B,) or (B*F,) bool: True = plain self-attention, no reference (Q10).
        """
        cfg = self.config
        if latents.dim() != 5 or latents.shape[2] != cfg.in_channels:
            raise ValueError(f"latents must be (B, F, {cfg.in_channels}, h, w); got {tuple(latents.shape)}")
        b, f, c, h, w = latents.shape
        n = b * f
        if image_tokens.dim() != 3 or image_tokens.shape[0] != b or image_tokens.shape[2] != cfg.cross_attention_dim:
            raise ValueError(f"image tokens must be ({b}, K, {cfg.cross_attention_dim}); got {tuple(image_tokens.shape)}")
        if audio_tokens.dim() != 4 or audio_tokens.shape[:2] != (b, f) or audio_tokens.shape[3] != cfg.audio_attention_dim:
            raise ValueError(
                f"audio tokens must be ({b}, {f}, T, {cfg.audio_attention_dim}); got {tuple(audio_tokens.shape)}")
        state = self.new_state(b) if state is None else state
        if state.batch != b or len(state.contexts) != len(self.motion_sites):
            raise ValueError(f"state was made for batch {state.batch} and {len(state.contexts)} motion sites; "
                             f"this call has batch {b} and the net {len(self.motion_sites)}")
        rows = _uncond_rows(uncond, b, f)
        labels = None if emotion is None else _per_video(emotion, b, "emotion").repeat_interleave(f)
        audio = audio_tokens.reshape(n, *audio_tokens.shape[2:])
        context = image_tokens.repeat_interleave(f, dim=0)  # the release's "(b f)" repeat: not a quirk
        temb = self.time_embedding(self.time_proj(released_timesteps(timestep, b, latents.device)).to(latents.dtype))
        contexts = iter(state.contexts)

        x = latents.reshape(n, c, h, w)
        if cfg.center_input_sample:
            x = 2 * x - 1.0

        def layer(level: _Level, j: int, x: Tensor, audio: Tensor, feature: str) -> tuple[Tensor, Tensor]:
            if level.attentions is not None:
                x = level.attentions[j].diffusion_forward(
                    x, self._reference_rows(reference, feature, b, f, x), context, rows)
                x, audio = _fuse_audio(level.audio_modules[j], x, audio, labels)
            if level.motion_modules[j] is not None:
                x = _motion(level.motion_modules[j], x, next(contexts), b, f)
            return x, audio

        x = self.conv_in(x)
        skips = [x]
        for i, level in enumerate(self.down_blocks):
            for j, resnet in enumerate(level.resnets):
                x, audio = layer(level, j, resnet(x, temb, f), audio, f"down.{i}.{j}.0")
                skips.append(x)
            if hasattr(level, "downsamplers"):
                x = level.downsamplers[0](x)
                skips.append(x)

        x = self.mid_block.resnets[0](x, temb, f)
        x, audio = layer(self.mid_block, 0, x, audio, "mid.0.0.0")
        x = self.mid_block.resnets[1](x, temb, f)

        factor = 2 ** (len(self.up_blocks) - 1)
        forward_size = any(s % factor for s in (h, w))
        for i, level in enumerate(self.up_blocks):
            # latents not divisible by the total upsampling: each upsample is given the skip's size
            last = i == len(self.up_blocks) - 1
            upsample_size = skips[-len(level.resnets) - 1].shape[2:] if forward_size and not last else None
            for j, resnet in enumerate(level.resnets):
                x = resnet(torch.cat([x, skips.pop()], dim=1), temb, f)
                x, audio = layer(level, j, x, audio, f"up.{i}.{j}.0")
            if hasattr(level, "upsamplers"):
                x = level.upsamplers[0](x, upsample_size)

        x = self.conv_out(self.conv_act(video_group_norm(self.conv_norm_out, x, f, cfg.use_inflated_groupnorm)))
        return x.reshape(b, f, *x.shape[1:])


def _fuse_audio(module: nn.Module, x: Tensor, audio: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
    """An audio module on a site's tokens (N, HW, C) with its audio stream (N, T, A) (E1, Q7)."""
    n, c, h, w = x.shape
    video, audio = module(x.flatten(2).transpose(1, 2), audio, labels)
    return video.transpose(1, 2).reshape(n, c, h, w), audio


def _motion(module: nn.Module, x: Tensor, context: Any, batch: int, frames: int) -> Tensor:
    """A motion module on (B, F, C, H, W) reading its context (T1-T6)."""
    n, c, h, w = x.shape
    # contiguous: the next convolution then runs (and rounds) as on a plain (N, C, H, W) tensor
    return module(x.reshape(batch, frames, c, h, w), context).reshape(n, c, h, w).contiguous()


def _per_video(value: Tensor, batch: int, name: str) -> Tensor:
    if value.shape != (batch,):
        raise ValueError(f"{name} must be ({batch},), one per video; got {tuple(value.shape)}")
    return value


def _uncond_rows(uncond: Tensor | None, batch: int, frames: int) -> Tensor | None:
    """(B,) per video or (B*F,) per row (the release's ``uc_mask``) -> (B*F,) bool, or None."""
    if uncond is None:
        return None
    uncond = uncond.to(torch.bool)
    if uncond.shape == (batch,):
        return uncond.repeat_interleave(frames)
    if uncond.shape == (batch * frames,):
        return uncond
    raise ValueError(f"uncond must be ({batch},) or ({batch * frames},); got {tuple(uncond.shape)}")
