"""Reference attention (spec A2, A3): the Reference Net writes its self-attention inputs, the
Diffusion Net's self-attention reads them.

Every ``BasicTransformerBlock`` of both UNets gets a :class:`MemoAttnProcessor` on its
self-attention (``attn1``) and on its cross-attention (``attn2``):

- ``write`` (Reference Net, attn1): records the tokens attn1 receives -- the block's normed
  hidden states, (N, L, C) -- under the layer's name, then attends as usual.
- ``read`` (Diffusion Net, attn1): keys and values come from [own tokens ; reference tokens of the
  same layer] (A3). The reference has one image per video, (B, L_ref, C); it is shared by the F
  frames of that video, whose tokens arrive folded as (B*F, L, C). Reading nothing (the
  classifier-free-guidance unconditional branch, §10: "spatial attention without the reference
  features") is plain self-attention, the same as SD's.
- ``plain`` (attn2 of both nets): SD's attention. It is ours only so that the per-call argument
  below reaches attn1 without diffusers warning that attn2 ignores it.

Per-call data travels as the processor keyword argument ``memo_reference`` inside diffusers'
``cross_attention_kwargs``: diffusers hands that dict to its gradient-checkpointing function as an
argument, so a block recomputed during backward sees the same reference as in forward (state
kept on the processors would not survive that). Layers are matched by name: the name of attn1 in
a plain ``UNet2DConditionModel`` (``down_blocks.0.attentions.0.transformer_blocks.0.attn1``), the
same in both nets because they share one geometry.

The attention arithmetic follows diffusers' ``AttnProcessor2_0`` operation for operation (softmax
attention through ``F.scaled_dot_product_attention``, so a GPU takes its fused kernels), so the
``plain`` path (and ``read`` with nothing to read) is bit-identical to an unmodified UNet.

Reference K/V cache (the GPU fast path, ``memo_zoo.generate.fast_path``): the reference states are
made once per video (A2) and every denoising step of every clip reads the same tensors, so a
``read`` processor with ``cache_kv`` on keeps the keys and values it projected from them and reuses
them while the same tensor object comes back (held by weak reference: a new video's states are a
new object) with the same weights and autocast dtype. It is off while gradients are recorded
(training: each step needs its own graph) and inside ``torch.compile`` (the lookup is Python-side;
the projections stay in the graph). Reusing the very tensors projected before makes it
bit-identical to recomputing them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Literal, Mapping

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from memo_zoo.model.attention import merge_heads, split_heads

CACHE_ENTRIES = 4
"""Reference states a read site keeps keys/values of at once: a sampler may alternate between a few
sets per video (guided and conditional branches of a guidance interval), each read many times."""

REFERENCE_KWARG = "memo_reference"
"""Key of the per-call reference object in ``cross_attention_kwargs``."""

Role = Literal["plain", "write", "read"]


@dataclass
class ReferenceWrite:
    """Collects the attn1 inputs of one Reference Net call: layer name -> (N, L, C)."""

    states: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceRead:
    """What the Diffusion Net's attn1 layers read in one call.

    states: layer name -> (B, L_ref, C) reference tokens, or None for no reference at all.
    frames: F, the number of frames folded into the batch next to each reference.
    mask:   optional (B,) bool; False drops the reference of that video only (a batched
            classifier-free-guidance pass with conditional and unconditional videos side by side).
    """

    states: Mapping[str, Tensor] | None
    frames: int
    mask: Tensor | None = None


class MemoAttnProcessor:
    """diffusers attention processor for the reference-attention roles (see the module docstring)."""

    def __init__(self, role: Role, layer: str) -> None:
        if role not in ("plain", "write", "read"):
            raise ValueError(f"unknown reference-attention role {role!r}")
        self.role = role
        self.layer = layer
        self.cache_kv = False  # set by memo_zoo.generate.fast_path (see the module docstring)
        self._kv: list[tuple[weakref.ref, tuple, tuple[Tensor, Tensor]]] = []  # newest last

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        memo_reference: ReferenceWrite | ReferenceRead | None = None,
    ) -> Tensor:
        if self.role == "write" and memo_reference is not None:
            if not isinstance(memo_reference, ReferenceWrite):
                raise TypeError(f"{self.layer}: a write processor got {type(memo_reference).__name__}")
            memo_reference.states[self.layer] = hidden_states
        if self.role == "read" and memo_reference is not None:
            if not isinstance(memo_reference, ReferenceRead):
                raise TypeError(f"{self.layer}: a read processor got {type(memo_reference).__name__}")
            if memo_reference.states is not None:
                if attention_mask is not None:
                    raise ValueError(f"{self.layer}: reference attention takes no attention_mask")
                if self.layer not in memo_reference.states:
                    raise KeyError(f"reference states lack layer {self.layer!r}; were they made by a "
                                   "Reference Net of the same geometry?")
                reference = memo_reference.states[self.layer]
                # Under torch.compile the projections stay in the graph (a lookup would break it).
                kv = self._reference_kv(attn, reference, hidden_states.dtype) \
                    if self.cache_kv and not torch.compiler.is_compiling() else None
                return reference_attention(attn, hidden_states, reference, memo_reference.frames,
                                           memo_reference.mask, kv)
        return plain_attention(attn, hidden_states, encoder_hidden_states, attention_mask)

    @torch.compiler.disable  # Python-side bookkeeping; the caller skips it while compiling, and it is never traced
    def _reference_kv(self, attn: Attention, reference: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor] | None:
        """The cached (keys, values) of ``reference`` (B, L_ref, inner), projecting them on a miss;
        None while gradients are recorded (no cache then)."""
        if torch.is_grad_enabled():
            return None
        key = kv_cache_key(attn, reference, dtype)
        for ref, entry_key, kv in self._kv:
            if ref() is reference and entry_key == key:
                return kv
        kv = reference_kv(attn, reference, dtype)
        owner = weakref.ref(self)

        def forget(dead: weakref.ref) -> None:  # the video's states are gone: free their keys/values
            processor = owner()
            if processor is not None:
                processor._kv = [entry for entry in processor._kv if entry[0] is not dead]

        # Entries of the same states under other weights / dtypes are stale; the oldest goes first.
        kept = [entry for entry in self._kv if entry[0]() is not reference]
        self._kv = (kept + [(weakref.ref(reference, forget), key, kv)])[-CACHE_ENTRIES:]
        return kv

    def clear_cache(self) -> None:
        """Drop the cached reference keys/values."""
        self._kv = []


def kv_cache_key(attn: Attention, reference: Tensor, dtype: torch.dtype) -> tuple:
    """What a cached projection of ``reference`` depends on besides its values: the dtype it is cast
    to, the autocast state of its device, and the k/v weights (object, in-place version, storage)."""
    device = reference.device.type
    try:
        autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
    except RuntimeError:  # a device type without autocast
        autocast = None
    weights = tuple((id(p), p._version, p.data_ptr(), p.dtype) for proj in (attn.to_k, attn.to_v)
                    for p in proj.parameters())
    return dtype, autocast, weights


def reference_kv(attn: Attention, reference: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Keys and values of the reference tokens (B, L_ref, C), once per video (not per frame)."""
    tokens = reference.to(dtype)
    return attn.to_k(tokens), attn.to_v(tokens)


def plain_attention(attn: Attention, hidden_states: Tensor, encoder_hidden_states: Tensor | None,
                    attention_mask: Tensor | None) -> Tensor:
    """SD's attention on (N, L, C) tokens, as diffusers' AttnProcessor2_0 computes it."""
    batch, length, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
    if attention_mask is not None:
        attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
        attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
    query = attn.to_q(hidden_states)
    if encoder_hidden_states is None:
        encoder_hidden_states = hidden_states
    elif attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    key = attn.to_k(encoder_hidden_states)
    value = attn.to_v(encoder_hidden_states)
    out = F.scaled_dot_product_attention(split_heads(query, attn.heads), split_heads(key, attn.heads),
                                         split_heads(value, attn.heads), attn_mask=attention_mask)
    return _project_out(attn, merge_heads(out).to(query.dtype))


def reference_attention(attn: Attention, hidden_states: Tensor, reference: Tensor, frames: int,
                        mask: Tensor | None = None, kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Self-attention over [own tokens ; reference tokens] (A3).

    hidden_states: (B*F, L, C), frames of B videos folded into the batch, video-major.
    reference:     (B, L_ref, C), one set per video, shared by its F frames.
    mask:          optional (B,) bool, False = this video attends to its own tokens only.
    kv:            optional precomputed ``reference_kv(attn, reference, hidden_states.dtype)``.
    """
    total, _, channels = hidden_states.shape
    batch = reference.shape[0]
    if batch * frames != total or reference.shape[2] != channels:
        raise ValueError(f"{tuple(reference.shape)} reference tokens do not fit {tuple(hidden_states.shape)} "
                         f"hidden states of {frames} frames per video")
    query = attn.to_q(hidden_states)
    # Project the reference once per video, not once per frame, then share it over the frames.
    ref_key, ref_value = (_per_frame(t, frames) for t in (kv or reference_kv(attn, reference, hidden_states.dtype)))
    key = torch.cat([attn.to_k(hidden_states), ref_key], dim=1)
    value = torch.cat([attn.to_v(hidden_states), ref_value], dim=1)
    keep = None
    if mask is not None:
        # True = may attend. Own tokens always; reference tokens where the video's mask is True.
        own = torch.ones(total, hidden_states.shape[1], dtype=torch.bool, device=query.device)
        ref = mask.to(device=query.device, dtype=torch.bool).repeat_interleave(frames)[:, None]
        keep = torch.cat([own, ref.expand(total, reference.shape[1])], dim=1)[:, None, None, :]
    out = F.scaled_dot_product_attention(split_heads(query, attn.heads), split_heads(key, attn.heads),
                                         split_heads(value, attn.heads), attn_mask=keep)
    return _project_out(attn, merge_heads(out).to(query.dtype))


def _per_frame(tokens: Tensor, frames: int) -> Tensor:
    """(B, L, C) -> (B*F, L, C), video-major like the folded frames."""
    b, length, c = tokens.shape
    return tokens.unsqueeze(1).expand(b, frames, length, c).reshape(b * frames, length, c)


def _project_out(attn: Attention, out: Tensor) -> Tensor:
    # Linear, then dropout. No residual / rescale: install_processors refuses layers that have them.
    return attn.to_out[1](attn.to_out[0](out))


def _check_supported(name: str, attn: Attention) -> None:
    """The processor implements SD transformer-block attention; refuse other attention layouts."""
    unsupported = [what for what, present in (
        ("spatial_norm", attn.spatial_norm is not None), ("group_norm", attn.group_norm is not None),
        ("residual_connection", attn.residual_connection), ("norm_q/norm_k", attn.norm_q is not None
                                                            or attn.norm_k is not None),
        ("rescale_output_factor", attn.rescale_output_factor != 1.0)) if present]
    if unsupported:
        raise ValueError(f"{name}: reference-attention processors do not support {', '.join(unsupported)}")


def install_processors(unet: nn.Module, self_role: Role) -> list[str]:
    """Put ``self_role`` processors on every transformer block's attn1 and ``plain`` ones on attn2.

    Call on a plain ``UNet2DConditionModel`` (before any wrapping), so that layer names are the
    plain UNet's. Returns the attn1 layer names in module order.
    """
    layers = []
    for name, module in unet.named_modules():
        if not isinstance(module, BasicTransformerBlock):
            continue
        for attr, role in (("attn1", self_role), ("attn2", "plain")):
            attn = getattr(module, attr, None)
            if attn is None:
                continue
            _check_supported(f"{name}.{attr}", attn)
            attn.set_processor(MemoAttnProcessor(role, f"{name}.{attr}"))
        layers.append(f"{name}.attn1")
    if not layers:
        raise ValueError("the UNet has no transformer blocks: nothing to attach reference attention to")
    return layers
