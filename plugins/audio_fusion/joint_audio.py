"""The released MEMO audio module as an audio-fusion kind, ``joint_audio`` (spec E1, E3, §10).

The authors' checkpoint has one of these per Diffusion Net site (16 at full size, keys
``<block>.audio_modules.N.*``): a GroupNorm and a 1x1 projection from the site width C to the
attention width ("inner", which differs from C at some sites: golden README Q6), one two-stream
transformer block, a 1x1 projection back to C and the residual. The block, in the release's
order:

1. Emo-AdaLN ``norm1`` / ``audio_norm1``, then self-attention of each stream on its own:
   ``attn1`` over the frame's L video tokens, ``audio_attn1`` over its T audio tokens (width
   A -> inner -> A); both residual.
2. Emo-AdaLN ``norm2`` / ``audio_norm2``, then one joint attention ``attn2`` over
   [L video ; T audio] tokens (E1): video q/k/v from ``to_q/k/v`` (no bias), audio q/k/v from
   ``add_q/k/v_proj`` (bias), split back through ``to_out`` (video) and ``to_add_out`` (audio);
   both residual.
3. Affine LayerNorm ``norm3`` / ``audio_norm3`` and a GEGLU feed-forward ``ff`` / ``audio_ff``
   (exact GELU); both residual.

State-dict keys and shapes are the release's under ``<...>.audio_modules.N.``: the 1x1 projections
keep their (inner, C, 1, 1) conv shapes and are applied to tokens as the equivalent matmul; the
GroupNorm runs per frame on the (N, C, L) token layout, which is the GroupNorm of (N, C, H, W).

How it differs from the zoo's own ``multimodal_attention`` (``multimodal_attention.py``) and its
Emo-AdaNorm (``emo_adanorm.py``):

- Emo-AdaLN: the release reads ``shift, scale = Linear(SiLU(e)).chunk(2)``, shift first; the
  zoo's EmoAdaNorm reads scale first. The emotion embedding is as wide as the normed features
  (inner or A), not a separate 128-wide embedding; the table has 9 rows plus the "no emotion" row
  only when the release's ``emo_drop_rate > 0`` (``null_emotion_row``), the zoo's always has the
  extra row; LayerNorm eps 1e-5, not 1e-6. Module names ``class_embedder.embedding_table`` and
  ``adaLN_modulation.1`` are the release's.
- Layout: GroupNorm + 1x1 projections C <-> inner around the block; the zoo's module has neither
  and attends at width C. The audio tokens are projected to inner only inside the attentions.
- Depth: two per-stream self-attentions and two feed-forwards besides the joint attention; the
  zoo's module is the joint attention alone, with separate q/k/v of 3C per stream and no bias.
- Audio stream: the release returns ``block(audio) + audio``, counting the input twice (Q7,
  ``double_audio_residual``); the zoo's returns a single residual. The last site (``final``)
  has no ``audio_ff``, ``audio_norm3`` or ``attn2.to_add_out`` and returns no audio; here it
  returns ``audio`` unchanged, which its host discards.
- Initialisation (A6): the release initialises nothing to zero (its ``proj_out`` is a default
  Conv2d, its modulations default Linears; the checkpoint replaces them anyway). Here, as in
  every zoo module, ``proj_out`` and the audio stream's output layers (``audio_attn1.to_out.0``,
  ``attn2.to_add_out``, ``audio_ff.net.2``) start at zero, and so does every Emo-AdaLN
  modulation (E3), so a new module returns ``video`` exactly, and ``audio`` exactly with the
  single residual (twice ``audio`` with the double one).

Holds ``JointAudioConfig`` (from the torch-free ``configs.py``), ``JointAudioModule`` and its
factory ``build``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memo_zoo.model.attention import merge_heads, split_heads

from .configs import JointAudioConfig  # noqa: F401  (its home is torch-free; re-exported here)

__all__ = ["JointAudioConfig", "JointAudioModule", "build"]


def _zero(layer: nn.Module) -> nn.Module:
    for p in layer.parameters():
        nn.init.zeros_(p)
    return layer


class EmotionTable(nn.Module):
    """The emotion embedding table, named as the release's ``LabelEmbedding`` (``embedding_table``).

    Label dropout for guidance is the trainer's job (L6: it passes ``emotion=None``), so none here.
    """

    def __init__(self, num_classes: int, null_row: bool, dim: int) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + int(null_row), dim)

    def forward(self, labels: Tensor) -> Tensor:
        return self.embedding_table(labels)


class ReleasedEmoAdaLayerNorm(nn.Module):
    """The release's Emo-AdaLN (E3, golden README Q8): ``LN(x) * (1 + scale) + shift``.

    ``shift, scale = Linear(SiLU(table[emotion])).chunk(2)``, shift first; the LayerNorm has no
    affine parameters. The modulation starts at zero (E3), so a new norm is a plain LayerNorm.
    """

    def __init__(self, dim: int, num_classes: int, null_row: bool, eps: float) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.class_embedder = EmotionTable(num_classes, null_row, dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), _zero(nn.Linear(dim, 2 * dim)))

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """x (N, L, dim), labels LongTensor (N,), one per row -> (N, L, dim)."""
        shift, scale = self.adaLN_modulation(self.class_embedder(labels)).to(x.dtype).unsqueeze(1).chunk(2, dim=-1)
        return F.layer_norm(x, (self.dim,), eps=self.eps) * (1 + scale) + shift


class SelfAttention(nn.Module):
    """Multi-head self-attention with the release's key names (``to_q/k/v``, ``to_out.0``).

    ``dim -> inner`` projections without bias, ``inner -> dim`` output with bias, softmax scale
    ``head_dim ** -0.5``.
    """

    def __init__(self, dim: int, inner: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(dropout)])

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (split_heads(proj(x), self.heads) for proj in (self.to_q, self.to_k, self.to_v))
        out = merge_heads(F.scaled_dot_product_attention(q, k, v))
        return self.to_out[1](self.to_out[0](out))


class JointAttention(nn.Module):
    """The joint attention ``attn2`` (E1; the release's ``JointAttnProcessor2_0``, README Q6).

    Video q/k/v from ``to_q/k/v`` (inner -> inner, no bias), audio q/k/v from ``add_q/k/v_proj``
    (A -> inner, bias); one softmax over the [L video ; T audio] keys of a frame; the result split
    back into ``to_out`` (video) and ``to_add_out`` (audio, absent at the final site).
    """

    def __init__(self, inner: int, audio_dim: int, heads: int, final: bool, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.final = final
        self.to_q = nn.Linear(inner, inner, bias=False)
        self.to_k = nn.Linear(inner, inner, bias=False)
        self.to_v = nn.Linear(inner, inner, bias=False)
        self.add_k_proj = nn.Linear(audio_dim, inner)
        self.add_v_proj = nn.Linear(audio_dim, inner)
        self.add_q_proj = nn.Linear(audio_dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, inner), nn.Dropout(dropout)])
        if not final:
            self.to_add_out = _zero(nn.Linear(inner, audio_dim))

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        length = video.shape[1]
        q = torch.cat([self.to_q(video), self.add_q_proj(audio)], dim=1)
        k = torch.cat([self.to_k(video), self.add_k_proj(audio)], dim=1)
        v = torch.cat([self.to_v(video), self.add_v_proj(audio)], dim=1)
        joint = merge_heads(F.scaled_dot_product_attention(*(split_heads(t, self.heads) for t in (q, k, v))))
        video_out = self.to_out[1](self.to_out[0](joint[:, :length]))
        return video_out, (None if self.final else self.to_add_out(joint[:, length:]))


class GEGLU(nn.Module):
    """``proj(x) = [h ; gate]`` -> ``h * gelu(gate)`` (exact GELU), as diffusers' GEGLU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: Tensor) -> Tensor:
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with the release's keys: ``net.0.proj`` (dim -> 2 * mult * dim), ``net.2``."""

    def __init__(self, dim: int, mult: int, dropout: float) -> None:
        super().__init__()
        hidden = mult * dim
        self.net = nn.ModuleList([GEGLU(dim, hidden), nn.Dropout(dropout), nn.Linear(hidden, dim)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class JointAudioBlock(nn.Module):
    """The release's ``JointAudioTemporalBasicTransformerBlock`` (E1, E3) at width ``inner``.

    ``forward(video (N, L, inner), audio (N, T, A), labels (N,))`` returns the updated video and,
    except at the final site, the updated audio (both carry their own residuals).
    """

    def __init__(self, config: JointAudioConfig, inner: int, audio_dim: int, heads: int, final: bool) -> None:
        super().__init__()
        self.final = final

        def emo_norm(dim: int) -> ReleasedEmoAdaLayerNorm:
            return ReleasedEmoAdaLayerNorm(dim, config.num_emotion_classes, config.null_emotion_row,
                                           config.layer_norm_eps)

        self.norm1 = emo_norm(inner)
        self.attn1 = SelfAttention(inner, inner, heads, config.dropout)
        self.audio_norm1 = emo_norm(audio_dim)
        self.audio_attn1 = SelfAttention(audio_dim, inner, heads, config.dropout)
        _zero(self.audio_attn1.to_out[0])  # A6: the audio stream starts unchanged
        self.norm2 = emo_norm(inner)
        self.audio_norm2 = emo_norm(audio_dim)
        self.attn2 = JointAttention(inner, audio_dim, heads, final, config.dropout)
        self.ff = FeedForward(inner, config.ff_mult, config.dropout)
        self.norm3 = nn.LayerNorm(inner, eps=config.layer_norm_eps)
        if not final:  # the release has no audio output layers at its last site
            self.audio_ff = FeedForward(audio_dim, config.ff_mult, config.dropout)
            _zero(self.audio_ff.net[2])
            self.audio_norm3 = nn.LayerNorm(audio_dim, eps=config.layer_norm_eps)

    def forward(self, video: Tensor, audio: Tensor, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        video = video + self.attn1(self.norm1(video, labels))
        audio = audio + self.audio_attn1(self.audio_norm1(audio, labels))
        joint_video, joint_audio = self.attn2(self.norm2(video, labels), self.audio_norm2(audio, labels))
        video = video + joint_video
        video = video + self.ff(self.norm3(video))
        if self.final:
            return video, None
        audio = audio + joint_audio
        return video, audio + self.audio_ff(self.audio_norm3(audio))


class JointAudioModule(nn.Module):
    """The released audio module at one site (the release's ``Transformer3DModel(use_audio_module=True)``).

    ``module(video (N, L, C), audio (N, T, A), emotion (N,) or None) -> (video_out, audio_out)``
    (``memo_zoo.slots.audio_fusion``): N = batch * frames, one emotion label per row (the release
    takes one per sample and repeats it over the frames; the host does that here); None is the
    "no emotion" row. ``video_out = video + proj_out(block(proj_in(GroupNorm(video))))``.
    """

    def __init__(self, config: JointAudioConfig, channels: int, audio_dim: int, inner: int, heads: int,
                 norm_groups: int, final: bool) -> None:
        super().__init__()
        if inner % heads:
            raise ValueError(f"joint_audio: the inner width ({inner}) must be divisible by heads ({heads})")
        if channels % norm_groups:
            raise ValueError(f"joint_audio: the site width channels ({channels}) must be divisible by "
                             f"norm_groups ({norm_groups})")
        self.config = config
        self.channels, self.audio_dim, self.inner = channels, audio_dim, inner
        self.heads, self.norm_groups, self.final = heads, norm_groups, final
        self.norm = nn.GroupNorm(norm_groups, channels, eps=config.group_norm_eps)
        self.proj_in = nn.Conv2d(channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([JointAudioBlock(config, inner, audio_dim, heads, final)])
        self.proj_out = _zero(nn.Conv2d(inner, channels, kernel_size=1))  # A6: a new module returns video

    @property
    def null_emotion(self) -> int:
        """The "no emotion" index (guidance's unconditional branch): the row after the classes."""
        return self.config.num_emotion_classes

    def labels(self, emotion: Tensor | None, rows: int, device: torch.device) -> Tensor:
        """One class index per row; None -> the "no emotion" row for all."""
        if emotion is None:
            if not self.config.null_emotion_row:
                raise ValueError("joint_audio: emotion=None needs the 'no emotion' row, and this module was "
                                 "built with null_emotion_row=False; pass one label per row")
            return torch.full((rows,), self.null_emotion, dtype=torch.long, device=device)
        if emotion.shape != (rows,):
            raise ValueError(f"joint_audio: emotion must hold one label per row, shape ({rows},); "
                             f"got {tuple(emotion.shape)}")
        return emotion.long()

    def forward(self, video: Tensor, audio: Tensor, emotion: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """video (N, L, C), audio (N, T, A), emotion (N,) or None -> (video_out, audio_out)."""
        if video.ndim != 3 or video.shape[-1] != self.channels:
            raise ValueError(f"joint_audio: video must be (N, L, {self.channels}); got {tuple(video.shape)}")
        if audio.ndim != 3 or audio.shape[-1] != self.audio_dim or audio.shape[0] != video.shape[0]:
            raise ValueError(f"joint_audio: audio must be ({video.shape[0]}, T, {self.audio_dim}) for video "
                             f"{tuple(video.shape)}; got {tuple(audio.shape)}")
        labels = self.labels(emotion, video.shape[0], video.device)
        # (N, C, L) is the per-frame GroupNorm's layout; the 1x1 convs act on tokens as matmuls.
        x = self.norm(video.transpose(1, 2)).transpose(1, 2)
        x = F.linear(x, self.proj_in.weight.flatten(1), self.proj_in.bias)
        x, block_audio = self.transformer_blocks[0](x, audio, labels)
        video_out = video + F.linear(x, self.proj_out.weight.flatten(1), self.proj_out.bias)
        if block_audio is None:  # final site: its audio output has no reader
            return video_out, audio
        return video_out, (block_audio + audio if self.config.double_audio_residual else block_audio)


def build(config: JointAudioConfig, channels: int, audio_dim: int, inner_channels: int | None = None,
          final: bool = False, heads: int | None = None, norm_groups: int | None = None) -> JointAudioModule:
    """Factory of the ``joint_audio`` audio-fusion component (spec E1, E3, §10).

    ``channels`` and ``audio_dim`` are the slot's build args; the optional ones
    (``memo_zoo.slots.audio_fusion``) are what the released UNet decides per site:
    ``inner_channels`` (attention width, default ``channels``; README Q6), ``final`` (the last
    site, without audio output layers), ``heads`` (default ``config.heads``) and ``norm_groups``
    (default ``config.norm_groups``).
    """
    return JointAudioModule(
        config, channels, audio_dim,
        inner=channels if inner_channels is None else inner_channels,
        heads=config.heads if heads is None else heads,
        norm_groups=config.norm_groups if norm_groups is None else norm_groups,
        final=final,
    )
