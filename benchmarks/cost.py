"""FLOPs per generated frame of paper-size MEMO, by part, and the floor they set (issue 19; spec §10 speed).

Counted, not timed: every network is built on the ``meta`` device (shapes only: no weights are
allocated, nothing is computed) and run under ``torch.utils.flop_counter.FlopCounterMode``, which
counts 2 FLOPs per multiply-add of matmuls, convolutions and attention
(``scaled_dot_product_attention`` included: tests/unit/test_flop_count.py checks it against a hand
count). Elementwise work (norms, activations, softmax, the sampler's update) is not counted: it is
memory-bound and small next to the matmuls, so the totals are a floor, not a model of the time.

What one generated frame costs at the paper's settings (§10: 512 x 512 px = 4 x 64 x 64 latents,
16-frame clips after 16 motion frames, flow Euler with 20 steps, joint CFG = 2 guidance levels
batched in one forward, 30 fps), for both network families:

- ``sd15``: the zoo's ``MemoNet`` (memo_zoo/model/memo_net.py) with SD1.5's geometry and MEMO's
  default modules (``linear_memory`` temporal, ``multimodal_attention`` audio; 32 audio tokens of
  768, 4 image tokens of 768);
- ``memo_released``: ``ReleasedMemoNet`` built without weights from the vendored full-size configs
  (``motion_module`` temporal, ``joint_audio`` audio).

Parts, each reported per generated frame:

- reference net, per clip / 16: the reference frame and the 16 motion frames through the Reference
  Net, for both guidance levels (the release's loop runs [reference; 16 past] per level every clip;
  the zoo encodes the reference once per video, so for ``sd15`` this slightly over-counts);
- diffusion net, per step x 20 / 16, split by module kind (``KINDS`` below). "reference attention" is
  what the step costs more because the spatial self-attention also reads the reference features:
  the step counted with the reference minus the same step without it;
- VAE decode, per frame: diffusers' ``AutoencoderKL`` decoder with sd-vae-ft-mse's config at 512 px;
- VAE encode of the motion frames: the release's loop decodes each clip's last 16 frames and encodes
  them again for the next clip's memory (``motion_source: decoded``, golden README Q17, as
  recipes/memo_released.yaml runs it); the zoo's default (``latents``) skips it;
- audio encoder, per clip / 16: wav2vec2-base (``transformers.Wav2Vec2Model`` with
  wav2vec2-base-960h's config) over the clip's audio with +-2 frames of context, and the projector
  to 32 tokens of 768 (A5);
- emotion encoder, per frame: one 3 s window per frame (E5). emotion2vec_plus_large is a
  data2vec 2.0 model (7-layer CNN, 24 transformer layers of 1024, 16 heads, 4096 feed-forward); it is
  counted as the ``Wav2Vec2Model`` of those sizes, an equivalent transformer, not the file itself.

The floor is the total over NVIDIA's dense BF16 tensor rate (``DEVICES``); the release reports about
1 s per frame on an H100 (spec §10), so the last figure is how far above that floor it runs.

    .venv/bin/python benchmarks/cost.py --out cost.json        # paper size (about 20 s on a CPU)
    .venv/bin/python benchmarks/cost.py --smoke --out smoke.json   # tiny sizes, for the tests
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from memo_zoo.model.memo_net import build_network
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.components import slot_factories
from memo_zoo.recipe.network import PRESETS, RELEASED

# Dense (no sparsity) BF16 tensor-core rates. NVIDIA's H100 datasheet lists 1,979 TFLOPS for the
# SXM card "with sparsity" (dense is half); the H200 datasheet lists the same 1,979 with sparsity:
# the same compute with more and faster memory.
DEVICES: dict[str, dict[str, Any]] = {
    "H100 SXM": {"dense_bf16_tflops": 989.4,
                 "source": "NVIDIA H100 Tensor Core GPU datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity (SXM)"},
    "H200 SXM": {"dense_bf16_tflops": 989.4,
                 "source": "NVIDIA H200 Tensor Core GPU datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity (SXM)"},
}
REPORTED_S_PER_FRAME_H100 = 1.0  # spec §10: "about 1 s per generated frame on one H100"

# Module kinds of the Diffusion Net, one table for both families: the FLOPs a module does itself
# (its children's excluded) go to the first kind whose pattern its hierarchical name matches.
# zoo names: ...attentions.N.{spatial, audio, temporal}...; release: ...attentions.N (spatial),
# ...audio_modules.N, ...motion_modules.N. Audio and temporal come first: their modules hold attn1 too.
KINDS: tuple[tuple[str, str, str], ...] = (
    ("temporal", r"\.(temporal|motion_modules)(\.|$)",
     "temporal modules (zoo: linear_memory; release: motion modules)"),
    ("audio", r"\.(audio|audio_modules)(\.|$)", "audio modules (zoo: multimodal_attention; release: joint_audio)"),
    ("cross-attention", r"\.attn2(\.|$)", "spatial cross-attention to the 4 image tokens (A4)"),
    ("spatial self-attention", r"\.attn1(\.|$)", "spatial self-attention over the frame's own tokens (q, k, v, out)"),
    ("spatial transformer, rest", r"\.attentions(\.|$)",
     "the spatial transformer's feed-forward and proj_in / proj_out"),
    ("resnets", r"\.(resnets|downsamplers|upsamplers)(\.|$)|\.conv_(in|out)$",
     "ResNet blocks, the down- and up-sampling convs, conv_in / conv_out"),
    ("other", r"", "time embedding and anything else"),
)
REFERENCE_KIND = "reference attention"  # not a pattern: the with-minus-without-reference difference

# sd-vae-ft-mse's config.json (the VAE of SD1.5 pipelines and of MEMO's release).
SD_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": (128, 256, 512, 512),
          "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
          "layers_per_block": 2, "norm_num_groups": 32, "act_fn": "silu", "sample_size": 256}
_CNN = {"conv_dim": (512,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2),
        "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16}
# facebook/wav2vec2-base-960h's config.json (its sizes; dropout and vocabulary do not change the cost).
WAV2VEC2_BASE = {**_CNN, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                 "intermediate_size": 3072, "feat_extract_norm": "group", "do_stable_layer_norm": False}
# emotion2vec_plus_large's sizes as a wav2vec2-style transformer (see the module docstring).
EMOTION_EQUIVALENT = {**_CNN, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                      "intermediate_size": 4096, "feat_extract_norm": "layer", "do_stable_layer_norm": True}

SAMPLE_RATE = 16_000
AUDIO_TOKENS = 32  # audio tokens per frame (A5, §10; NetworkConfig.audio_tokens)


@dataclass(frozen=True)
class Setting:
    """One clip of generation as counted (spec §10 unless noted)."""

    latent_side: int = 64         # 512 px through SD's 8x VAE
    frames: int = 16              # frames per clip
    motion_frames: int = 16       # past frames in the temporal memory (T6)
    steps: int = 20               # flow Euler steps (I3)
    levels: int = 2               # joint CFG: conditional + unconditional, batched in one forward (I2)
    fps: float = 30.0
    audio_window: int = 2         # +-frames of audio context per frame (A5)
    audio_hidden: int = 512       # the audio projector's hidden width (released code)
    emotion_seconds: float = 3.0  # one window per frame (E5)
    network: Mapping[str, Any] = field(default_factory=dict)  # geometry put over each family's preset
    vae: Mapping[str, Any] = field(default_factory=lambda: dict(SD_VAE))
    wav2vec2: Mapping[str, Any] = field(default_factory=lambda: dict(WAV2VEC2_BASE))
    emotion: Mapping[str, Any] = field(default_factory=lambda: dict(EMOTION_EQUIVALENT))


PAPER = Setting()
# Every code path at CPU-test sizes: a small geometry for both families, small encoders.
SMOKE = Setting(latent_side=8, frames=4, motion_frames=2, steps=2, fps=25.0, audio_window=1, audio_hidden=16,
                emotion_seconds=0.5,
                # four levels (the released net needs SD's), at tiny widths
                network={**PRESETS["sd15"], "block_out_channels": (32, 32, 64, 64), "layers_per_block": 1,
                         "attention_head_dim": 2, "norm_num_groups": 16, "cross_attention_dim": 24, "audio_dim": 16,
                         "image_embed_dim": 32, "sample_size": 8},
                vae={**SD_VAE, "block_out_channels": (8, 16), "down_block_types": ("DownEncoderBlock2D",) * 2,
                     "up_block_types": ("UpDecoderBlock2D",) * 2, "layers_per_block": 1, "norm_num_groups": 4},
                wav2vec2={**WAV2VEC2_BASE, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                          "intermediate_size": 64, "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16,
                          "num_conv_pos_embedding_groups": 2},
                emotion={**EMOTION_EQUIVALENT, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64, "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16,
                         "num_conv_pos_embedding_groups": 2})


@dataclass(frozen=True)
class Family:
    """A network family as a recipe's ``model`` section would name it."""

    name: str
    network: Mapping[str, Any]
    temporal: Mapping[str, Any] | None
    audio_fusion: Mapping[str, Any] | None
    reencode_motion: bool  # its recipe's loop encodes the decoded motion frames again (Q17)


FAMILIES = (
    Family("sd15", {"preset": "sd15"}, {"kind": "linear_memory"}, {"kind": "multimodal_attention"}, False),
    Family(RELEASED, {"preset": RELEASED}, None, None, True),
)


# ---- counting -----------------------------------------------------------------------------------

@dataclass
class Count:
    """FLOPs of one call: the total, what each module did itself (children excluded), and per aten op."""

    total: int
    own: dict[str, int]
    ops: dict[str, int]

    def __add__(self, other: "Count") -> "Count":
        return Count(self.total + other.total, _merge(self.own, other.own), _merge(self.ops, other.ops))

    def by_kind(self) -> dict[str, int]:
        kinds = {kind: 0 for kind, _, _ in KINDS}
        for name, flops in self.own.items():
            kinds[classify(name)] += flops
        return kinds


def _merge(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def classify(name: str) -> str:
    """The ``KINDS`` entry a module name falls in (the first pattern that matches)."""
    for kind, pattern, _ in KINDS:
        if re.search(pattern, name):
            return kind
    raise AssertionError("the last kind matches every name")


def own_flops(counts: Mapping[str, Mapping[Any, int]]) -> dict[str, int]:
    """Per module name, the FLOPs it did itself: FlopCounterMode credits every op to each module on
    the call stack (``get_flop_counts()`` is inclusive, with ``Global`` the whole), so a module's own
    share is its count less that of its nearest counted descendants. Attention matmuls live in the
    attention module itself, not in a leaf, so leaves alone would miss them."""
    totals = {name: int(sum(ops.values())) for name, ops in counts.items()}
    own = dict(totals)
    for name, total in totals.items():
        if name == "Global":
            continue
        parent = name
        while "." in parent:
            parent = parent.rsplit(".", 1)[0]
            if parent in totals:
                break
        else:
            parent = "Global"
        own[parent] -= total
    negative = {name: value for name, value in own.items() if value < 0}
    if negative:  # a module called outside its named parent: attribution by name would be wrong
        raise RuntimeError(f"module FLOPs do not nest by name: {negative}")
    return own


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """Q K^T plus weights @ V of the CPU flash-attention kernel, (B, H, L, E) layout. torch's counter
    has formulas for the CUDA kernels only: without this one, ``scaled_dot_product_attention`` on a
    CPU counts 0 FLOPs (tests/unit/test_flop_count.py). On ``meta`` it decomposes into counted bmms."""
    b, h, queries, width = query_shape
    return 2 * b * h * queries * key_shape[-2] * (width + value_shape[-1])


_CPU_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
EXTRA_FORMULAS = {} if _CPU_FLASH is None else {_CPU_FLASH: _cpu_flash_attention_flops}


def count(fn: Callable[[], object]) -> Count:
    """FLOPs of ``fn()`` (under ``torch.no_grad``)."""
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    with torch.no_grad(), counter:
        fn()
    counts = counter.get_flop_counts()
    ops = {str(op): int(v) for op, v in counts.get("Global", {}).items()}
    return Count(int(counter.get_total_flops()), own_flops(counts), ops)


# ---- the network and its calls ------------------------------------------------------------------

def build_family(family: Family, setting: Setting, device: str | torch.device, registry=None) -> nn.Module:
    """The family's network with random weights (on ``meta``: shapes only) via ``build_network``."""
    registry = registry if registry is not None else load_registry(disabled=())
    model = SimpleNamespace(network={**family.network, **setting.network}, temporal=family.temporal,
                            audio_fusion=family.audio_fusion)
    with torch.device(device):
        return build_network(model, slot_factories(registry)).eval().requires_grad_(False)


@dataclass
class Inputs:
    """What one clip's network calls read, for ``levels`` guidance rows (row 0 conditional)."""

    embedding: Tensor
    reference_latent: Tensor
    motion: Tensor
    latents: Tensor
    time: Tensor
    audio: Tensor
    emotion: Tensor
    reference_mask: Tensor


def make_inputs(net: nn.Module, setting: Setting, device: str | torch.device, seed: int = 0) -> Inputs:
    cfg = net.network_config
    g = None if torch.device(device).type == "meta" else torch.Generator(device=device).manual_seed(seed)
    n, c, s = setting.levels, cfg.latent_channels, setting.latent_side

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, device=device)

    mask = torch.tensor([i == 0 for i in range(n)], device=device)
    return Inputs(embedding=r(1, cfg.image_embed_dim), reference_latent=r(1, c, s, s),
                  motion=r(1, setting.motion_frames, c, s, s), latents=r(1, setting.frames, c, s, s),
                  time=torch.full((n,), 0.5, device=device),
                  audio=r(n, setting.frames, cfg.audio_tokens, cfg.audio_dim),
                  emotion=torch.zeros(n, dtype=torch.long, device=device), reference_mask=mask)


def image_tokens(net: nn.Module, inputs: Inputs, levels: int) -> Tensor:
    """One row of image tokens per guidance level (the unconditional one from a zero embedding, §10)."""
    with_face = net.project_image(inputs.embedding)
    without = net.project_image(torch.zeros_like(inputs.embedding))
    return torch.cat([with_face] + [without] * (levels - 1))


def reference_pass(net: nn.Module, inputs: Inputs, tokens: Tensor) -> tuple[Any, Any]:
    """Once per clip: the reference and the motion frames through the Reference Net for every level."""
    n = tokens.shape[0]
    reference = net.encode_reference(inputs.reference_latent.repeat(n, 1, 1, 1), tokens)
    state = net.motion_state(inputs.motion.repeat(n, 1, 1, 1, 1), tokens)
    return reference, state


def guided_step(net: nn.Module, inputs: Inputs, tokens: Tensor, reference: Any, state: Any) -> Tensor:
    """One denoising step: the Diffusion Net on every guidance level in one batched forward, as
    ``memo_zoo.generate.sampling`` runs it (row 0 conditional, the others without reference)."""
    batch = inputs.latents.repeat(tokens.shape[0], 1, 1, 1, 1)
    return net(batch, inputs.time, tokens, inputs.audio, inputs.emotion, reference, state, inputs.reference_mask)


def level_contexts(net: nn.Module, inputs: Inputs, tokens: Tensor) -> list[tuple[Any, Any]]:
    """(reference, state) of each guidance level on its own (for ``split_step``)."""
    return [reference_pass(net, inputs, tokens[i:i + 1]) for i in range(tokens.shape[0])]


def split_step(net: nn.Module, inputs: Inputs, tokens: Tensor, contexts: list[tuple[Any, Any]]) -> list[Tensor]:
    """``guided_step`` as one call per level: the conditional level with the reference, the others
    without. The released network makes this split inside its batched call by selecting rows with
    a mask (released/spatial.py), a data-dependent choice meta tensors cannot make; the FLOPs are
    the same, so the counts take the split explicitly."""
    batch = inputs.latents
    out = []
    for i, (reference, state) in enumerate(contexts):
        level = slice(i, i + 1)
        out.append(net(batch, inputs.time[level], tokens[level], inputs.audio[level], inputs.emotion[level],
                       reference if i == 0 else None, state))
    return out


def unreferenced_step(net: nn.Module, inputs: Inputs, tokens: Tensor, state: Any) -> Tensor:
    """The same step with no reference features at all (to isolate the reference attention's FLOPs)."""
    batch = inputs.latents.repeat(tokens.shape[0], 1, 1, 1, 1)
    return net(batch, inputs.time, tokens, inputs.audio, inputs.emotion, None, state)


def splits_levels(net: nn.Module) -> bool:
    """Whether the network picks its unconditional rows by a data-dependent mask (the released
    family), so that a meta count needs ``split_step``."""
    return getattr(net, "family", None) == RELEASED


# ---- the encoders -------------------------------------------------------------------------------

def build_vae(setting: Setting, device: str | torch.device) -> nn.Module:
    from diffusers import AutoencoderKL

    with torch.device(device):
        return AutoencoderKL(**setting.vae).eval().requires_grad_(False)


def build_wav2vec2(config: Mapping[str, Any], device: str | torch.device) -> nn.Module:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    with torch.device(device):
        return Wav2Vec2Model(Wav2Vec2Config(**config, attn_implementation="sdpa")).eval().requires_grad_(False)


def build_audio_projector(setting: Setting, device: str | torch.device) -> nn.Module:
    from memo_zoo_plugins.audio_encoder.windows import TokenProjector

    w = setting.wav2vec2
    inputs = (2 * setting.audio_window + 1) * w["num_hidden_layers"] * w["hidden_size"]
    width = setting.network.get("audio_dim", PRESETS["sd15"]["audio_dim"])  # the network's audio_dim
    with torch.device(device):
        return TokenProjector(inputs, setting.audio_hidden, AUDIO_TOKENS, width).eval().requires_grad_(False)


def audio_samples(setting: Setting) -> int:
    """16 kHz samples of one clip's audio with its context frames on both sides (A5)."""
    return int(round((setting.frames + 2 * setting.audio_window) / setting.fps * SAMPLE_RATE))


def audio_pass(backbone: nn.Module, projector: nn.Module, setting: Setting, device: str | torch.device) -> Tensor:
    """wav2vec2 over one clip's audio, every hidden state kept, then the projector on the frames'
    windows ([2w+1, layers, hidden] per frame, §10)."""
    w = setting.wav2vec2
    backbone(torch.zeros(1, audio_samples(setting), device=device), output_hidden_states=True)
    windows = torch.zeros(1, setting.frames, 2 * setting.audio_window + 1, w["num_hidden_layers"], w["hidden_size"],
                          device=device)
    return projector(windows)


def emotion_pass(backbone: nn.Module, setting: Setting, device: str | torch.device) -> Tensor:
    """One emotion window (E5) through the backbone."""
    return backbone(torch.zeros(1, int(round(setting.emotion_seconds * SAMPLE_RATE)), device=device)).last_hidden_state


# ---- the report ---------------------------------------------------------------------------------

def encoder_counts(setting: Setting) -> dict[str, int]:
    vae = build_vae(setting, "meta")
    latent = torch.zeros(1, setting.vae["latent_channels"], setting.latent_side, setting.latent_side, device="meta")
    side = setting.latent_side * 2 ** (len(setting.vae["block_out_channels"]) - 1)
    image = torch.zeros(1, 3, side, side, device="meta")
    backbone, projector = build_wav2vec2(setting.wav2vec2, "meta"), build_audio_projector(setting, "meta")
    emotion = build_wav2vec2(setting.emotion, "meta")
    return {"vae_decode_per_frame": count(lambda: vae.decode(latent)).total,
            "vae_encode_per_frame": count(lambda: vae.encode(image)).total,
            "audio_encoder_per_clip": count(lambda: audio_pass(backbone, projector, setting, "meta")).total,
            "emotion_encoder_per_window": count(lambda: emotion_pass(emotion, setting, "meta")).total}


def family_counts(family: Family, setting: Setting, registry) -> dict[str, Any]:
    net = build_family(family, setting, "meta", registry)
    inputs = make_inputs(net, setting, "meta")
    holder: dict[str, Any] = {}

    def clip() -> None:
        holder["tokens"] = image_tokens(net, inputs, setting.levels)
        holder["reference"], holder["state"] = reference_pass(net, inputs, holder["tokens"])

    reference = count(clip)
    tokens, ref, state = holder["tokens"], holder["reference"], holder["state"]
    if splits_levels(net):
        contexts = level_contexts(net, inputs, tokens)
        step = count(lambda: split_step(net, inputs, tokens, contexts))
    else:
        step = count(lambda: guided_step(net, inputs, tokens, ref, state))
    plain = count(lambda: unreferenced_step(net, inputs, tokens, state))
    with_ref, without = step.by_kind(), plain.by_kind()
    kinds = dict(without)
    kinds[REFERENCE_KIND] = sum(with_ref.values()) - sum(without.values())
    if sum(kinds.values()) != step.total:
        raise RuntimeError(f"{family.name}: the kinds add up to {sum(kinds.values())}, the step is {step.total}")
    return {"reference_net_per_clip": reference.total, "diffusion_net_per_step": step.total,
            "diffusion_net_per_step_by_kind": kinds, "diffusion_net_per_step_ops": step.ops,
            "parameters": int(sum(p.numel() for p in net.parameters()))}


def per_frame(family: Family, setting: Setting, counts: Mapping[str, Any], encoders: Mapping[str, int]) -> dict:
    f = setting.frames
    kinds = {k: v * setting.steps / f for k, v in counts["diffusion_net_per_step_by_kind"].items()}
    parts = {"reference_net": counts["reference_net_per_clip"] / f,
             "diffusion_net": counts["diffusion_net_per_step"] * setting.steps / f,
             "vae_decode": float(encoders["vae_decode_per_frame"]),
             "vae_encode_motion_frames": (encoders["vae_encode_per_frame"] * setting.motion_frames / f
                                          if family.reencode_motion else 0.0),
             "audio_encoder": encoders["audio_encoder_per_clip"] / f,
             "emotion_encoder": float(encoders["emotion_encoder_per_window"])}
    parts["total"] = sum(parts.values())
    return {"parts": parts, "diffusion_net_by_kind": kinds}


def report_setting(setting: Setting) -> dict[str, Any]:
    """``setting`` as the report writes it (gpu.py compares a saved report's with it)."""
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(setting).items()}


def report(setting: Setting, families: tuple[Family, ...] = FAMILIES) -> dict[str, Any]:
    """Every count of the module docstring for ``setting``, as the JSON ``--out`` writes."""
    started = time.perf_counter()
    registry = load_registry(disabled=())
    encoders = encoder_counts(setting)
    out: dict[str, Any] = {
        "setting": report_setting(setting),
        "units": "FLOP = 2 per multiply-add (torch.utils.flop_counter): matmuls, convolutions, attention; "
                 "elementwise ops not counted",
        "devices": DEVICES, "reported_s_per_frame_h100": REPORTED_S_PER_FRAME_H100,
        "kinds": {kind: what for kind, _, what in KINDS} | {REFERENCE_KIND: "extra FLOPs of reading the reference "
                                                                         "features in spatial self-attention"},
        "encoders": encoders, "families": {}}
    for family in families:
        counts = family_counts(family, setting, registry)
        frame = per_frame(family, setting, counts, encoders)
        total = frame["parts"]["total"]
        floors = {name: total / (d["dense_bf16_tflops"] * 1e12) for name, d in DEVICES.items()}
        out["families"][family.name] = {
            **counts, "per_frame": frame, "floor_s_per_frame": floors,
            "reported_over_floor_h100": REPORTED_S_PER_FRAME_H100 / floors["H100 SXM"]}
    out["seconds"] = time.perf_counter() - started
    return out


def markdown(result: Mapping[str, Any]) -> str:
    """The table of docs/benchmarks.md: TFLOP per generated frame, by part and by kind."""
    names = list(result["families"])
    rows = [("| part (per generated frame) | " + " | ".join(f"`{n}` TFLOP" for n in names) + " |"),
            "|---|" + "---:|" * len(names)]

    def row(label: str, values: list[float]) -> None:
        rows.append(f"| {label} | " + " | ".join(f"{v / 1e12:.3f}" for v in values) + " |")

    fam = [result["families"][n] for n in names]
    parts = fam[0]["per_frame"]["parts"]
    labels = {"reference_net": "reference net (per clip / 16)", "diffusion_net": "diffusion net (20 steps / 16)",
              "vae_decode": "VAE decode", "vae_encode_motion_frames": "VAE encode of the motion frames (Q17)",
              "audio_encoder": "audio encoder (wav2vec2-base + projector)",
              "emotion_encoder": "emotion encoder (24 x 1024 equivalent, one 3 s window)", "total": "**total**"}
    for key in parts:
        if key == "diffusion_net":
            row(labels[key], [f["per_frame"]["parts"][key] for f in fam])
            for kind in fam[0]["per_frame"]["diffusion_net_by_kind"]:
                row(f"&nbsp;&nbsp;diffusion: {kind}", [f["per_frame"]["diffusion_net_by_kind"][kind] for f in fam])
        else:
            row(labels.get(key, key), [f["per_frame"]["parts"][key] for f in fam])
    for device in result["devices"]:
        rows.append(f"| floor at {device} dense BF16 (s / frame) | "
                    + " | ".join(f"{f['floor_s_per_frame'][device]:.3f}" for f in fam) + " |")
    rows.append("| reported ~1 s / frame (H100) over that floor | "
                + " | ".join(f"{f['reported_over_floor_h100']:.1f}x" for f in fam) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds; what the tests run)")
    parser.add_argument("--out", default=None, help="write the counts as JSON here")
    args = parser.parse_args(argv)
    result = report(SMOKE if args.smoke else PAPER)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    print(markdown(result))
    print(f"\ncounted in {result['seconds']:.1f} s (meta device, no weights allocated)", file=sys.stderr)


if __name__ == "__main__":
    main()
