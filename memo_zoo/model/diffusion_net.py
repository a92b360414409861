"""The Diffusion Net (spec A3): SD1.5's UNet with an audio module and a temporal module in every
transformer site, reference attention in every self-attention, predicting the flow velocity (L1).

Each ``Transformer2DModel`` of the UNet (down, mid, up) is replaced in ``block.attentions[i]`` by a
:class:`MemoBlock` that runs, in the order of spec §10 (the ResNet before it is diffusers'):

1. the spatial transformer, frames folded into the batch (B*F, C, H, W); its self-attention
   attends over [own tokens ; Reference Net tokens of the same layer] (A3);
2. the ``audio_fusion`` component on each frame's tokens (B*F, H*W, C) with that frame's audio
   tokens (B*F, T, A); the audio stream it returns is handed to the next site (§10);
3. the ``temporal`` component on (B, F, C, H, W), reading this site's context of the
   :class:`MemoState` (T1-T6).

The audio and temporal components are built by the factories the net is given (``channels`` =
the site's width, ``audio_dim`` = the audio tokens' width), so every registered kind plugs in. Their output
projections start at zero (A6): a fresh Diffusion Net without reference equals the plain UNet.

Per-call data reaches the sites through diffusers' ``cross_attention_kwargs`` (see
``reference_net.SiteCall``), never through state kept on modules, so gradient checkpointing and
concurrent CFG branches see exactly their own inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from memo_zoo.model.reference_attention import ReferenceRead
from memo_zoo.model.reference_net import CALL_KWARG, ReferenceOutput, Site, SiteBlock, SiteCall, SpatialUNet
from memo_zoo.recipe.network import NetworkConfig
from memo_zoo.slots.audio_fusion import AudioFusionFactory
from memo_zoo.slots.temporal import TemporalFactory


@dataclass(frozen=True)
class MemoState:
    """The temporal contexts of B videos, one per site in site order (T2, T6).

    Immutable: ``DiffusionNet.update_state`` returns a new state, so one state is read by every
    denoising step of a clip (and both CFG branches) and stays valid after a later update.
    """

    batch: int
    contexts: tuple[Any, ...]


@dataclass(kw_only=True)
class MemoCall(SiteCall):
    """One Diffusion Net call: what its sites read, and the audio stream they pass on."""

    frames: int
    audio: Tensor
    emotion: Tensor | None
    contexts: tuple[Any, ...] = field(default_factory=tuple)


class MemoBlock(SiteBlock):
    """A Diffusion Net site: spatial transformer -> audio module -> temporal module (§10)."""

    def __init__(self, spatial: nn.Module, index: int, audio: nn.Module, temporal: nn.Module) -> None:
        super().__init__(spatial, index)
        self.audio = audio
        self.temporal = temporal
        # diffusers' enable_gradient_checkpointing() sets this on every module that has it.
        self.gradient_checkpointing = False

    def after_spatial(self, hidden_states: Tensor, call: SiteCall) -> Tensor:
        if not isinstance(call, MemoCall):
            raise TypeError(f"MemoBlock needs a MemoCall, got {type(call).__name__}")
        args = (hidden_states, call.audio, call.emotion, call.contexts[self.index], call.frames)
        if self.gradient_checkpointing and torch.is_grad_enabled():
            # _fuse is a pure function of its arguments, so recomputing it in backward is exact;
            # the audio stream is stored on the call outside the checkpointed region.
            hidden_states, call.audio = checkpoint(self._fuse, *args, use_reentrant=False)
        else:
            hidden_states, call.audio = self._fuse(*args)
        return hidden_states

    def _fuse(self, hidden_states: Tensor, audio: Tensor, emotion: Tensor | None, context: Any,
              frames: int) -> tuple[Tensor, Tensor]:
        n, c, h, w = hidden_states.shape
        video, audio = self.audio(hidden_states.flatten(2).transpose(1, 2), audio, emotion)
        x = video.transpose(1, 2).reshape(n // frames, frames, c, h, w)
        x = self.temporal(x, context).reshape(n, c, h, w)
        # Back to the standard layout: the temporal output may be a permuted view, and diffusers'
        # next convolution would otherwise run (and round) differently from a plain UNet.
        return x.contiguous(), audio


class DiffusionNet(SpatialUNet):
    """The Diffusion Net (A3) built from ``config`` and the temporal / audio_fusion factories."""

    def __init__(self, config: NetworkConfig, temporal: TemporalFactory, audio_fusion: AudioFusionFactory) -> None:
        def make_block(order: int, site: Site, transformer: nn.Module) -> MemoBlock:
            audio = audio_fusion(channels=site.channels, audio_dim=config.audio_dim)
            return MemoBlock(transformer, order, audio, temporal(channels=site.channels))

        super().__init__(config, "read", make_block)
        self.temporal_config = temporal.config
        self.audio_fusion_config = audio_fusion.config

    @property
    def blocks(self) -> list[MemoBlock]:
        """The MemoBlocks in site order (down, mid, up)."""
        return [site.owner[site.index] for site in self.sites]

    def new_state(self, batch: int) -> MemoState:
        """An empty temporal state for ``batch`` videos (nothing seen yet)."""
        return MemoState(batch, tuple(block.temporal.new_context(batch) for block in self.blocks))

    def update_state(self, state: MemoState, motion_features: Sequence[Tensor]) -> MemoState:
        """Fold in the motion frames' features, one (B, Fm, C, H, W) per site (T2, T4, T6).

        Once per clip; returns a new state and leaves ``state`` valid. Gradients flow through it
        (T5 trains with memory built from motion frames); wrap it in ``torch.no_grad()`` to sample.
        """
        blocks = self.blocks
        if len(motion_features) != len(blocks):
            raise ValueError(f"need motion features for {len(blocks)} sites, got {len(motion_features)}")
        contexts = tuple(block.temporal.update_context(ctx, motion)
                         for block, ctx, motion in zip(blocks, state.contexts, motion_features))
        return MemoState(state.batch, contexts)

    def merge_states(self, parts: Sequence[tuple[Tensor, MemoState]], batch: int) -> MemoState | None:
        """One state for ``batch`` videos from the states of disjoint groups of them (``parts``:
        each group's video indices with its state), site by site through the temporal modules'
        optional ``merge_contexts``; None when a site's module has none (the caller then runs
        one forward per group)."""
        merges = [getattr(block.temporal, "merge_contexts", None) for block in self.blocks]
        if any(merge is None for merge in merges):
            return None
        return MemoState(batch, tuple(merge([(index, state.contexts[site]) for index, state in parts], batch)
                                      for site, merge in enumerate(merges)))

    def forward(
        self,
        latents: Tensor,
        timestep: Tensor | float,
        image_tokens: Tensor,
        audio_tokens: Tensor | None = None,
        emotion: Tensor | None = None,
        reference: Mapping[str, Tensor] | ReferenceOutput | None = None,
        state: MemoState | None = None,
        reference_mask: Tensor | None = None,
    ) -> Tensor:
        """Predicted velocity (B, F, c, h, w) of noisy ``latents`` (B, F, c, h, w).

        timestep:       flow time in [0, 1], scalar or (B,) (L1); scaled by ``timestep_scale``.
        image_tokens:   (B, K, cross_dim) cross-attention context, shared by the frames (A4).
        audio_tokens:   (B, F, T, A) projected audio tokens (A5); None = zero audio (§10's
                        unconditional branch).
        emotion:        (B,) or (B, F) class indices (the "no emotion" index included), or None.
        reference:      the Reference Net's attn1 states of the reference image, (B, L, C) per
                        layer (A3); None = spatial attention without reference (§10, CFG).
        state:          temporal contexts (T6); None = an empty one (no motion frames).
        reference_mask: optional (B,) bool, False = that video ignores its reference.
        """
        cfg = self.config
        if latents.dim() != 5 or latents.shape[2] != cfg.latent_channels:
            raise ValueError(f"latents must be (B, F, {cfg.latent_channels}, h, w); got {tuple(latents.shape)}")
        b, f, c, h, w = latents.shape
        n = b * f
        if image_tokens.dim() != 3 or image_tokens.shape[0] != b or image_tokens.shape[2] != cfg.cross_attention_dim:
            raise ValueError(f"image tokens must be ({b}, K, {cfg.cross_attention_dim}); got {tuple(image_tokens.shape)}")
        if audio_tokens is None:
            audio = latents.new_zeros(n, cfg.audio_tokens, cfg.audio_dim)
        else:
            if audio_tokens.dim() != 4 or audio_tokens.shape[:2] != (b, f) or audio_tokens.shape[3] != cfg.audio_dim:
                raise ValueError(f"audio tokens must be ({b}, {f}, T, {cfg.audio_dim}); got {tuple(audio_tokens.shape)}")
            audio = audio_tokens.reshape(n, *audio_tokens.shape[2:])
        state = self.new_state(b) if state is None else state
        if state.batch != b or len(state.contexts) != len(self.sites):
            raise ValueError(f"state was made for batch {state.batch} and {len(state.contexts)} sites; "
                             f"this call has batch {b} and the net {len(self.sites)} sites")
        if isinstance(reference, ReferenceOutput):
            reference = reference.hidden_states
        if reference is None and reference_mask is not None:
            raise ValueError("reference_mask needs a reference")
        if reference_mask is not None and reference_mask.shape != (b,):
            raise ValueError(f"reference_mask must be ({b},); got {tuple(reference_mask.shape)}")
        call = MemoCall(reference=ReferenceRead(reference, f, reference_mask), frames=f, audio=audio,
                        emotion=_per_frame_labels(emotion, b, f), contexts=state.contexts)
        timesteps = self._fold_timestep(timestep, b, latents.device).repeat_interleave(f)
        out = self.unet(latents.reshape(n, c, h, w), timesteps,
                        encoder_hidden_states=image_tokens.repeat_interleave(f, dim=0),
                        cross_attention_kwargs={CALL_KWARG: call}, return_dict=False)[0]
        return out.reshape(b, f, c, h, w)


def _per_frame_labels(emotion: Tensor | None, batch: int, frames: int) -> Tensor | None:
    """Emotion (B,) per video or (B, F) per frame -> (B*F,) per folded frame."""
    if emotion is None:
        return None
    if emotion.shape == (batch,):
        return emotion.repeat_interleave(frames)
    if emotion.shape == (batch, frames):
        return emotion.reshape(batch * frames)
    raise ValueError(f"emotion must be ({batch},) or ({batch}, {frames}); got {tuple(emotion.shape)}")
