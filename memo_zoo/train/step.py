"""One training step of MEMO from a collated batch (spec §5: L1, L2, L3, L6; T5; §10).

Per micro-batch (B samples, F target frames, M motion slots; ``memo_zoo.data.samples``):

1. ``draw``: flow times t ~ logit-normal (L1), noise, and four independent dropout masks (L6),
   from a generator the loop seeds per (seed, step, micro-batch number in the step's global
   order; ``memo_zoo.train.loop.chunk_seed``), so a step is the same after a resume, on any world
   size, and differs between micro-batches.
2. ``prepare_inputs`` (no gradient; frozen VAE, A1): target, reference and the REAL motion frames
   to latents; the padded waveform rebuilt from the audio windows; emotion with dropout applied
   (the "no emotion" index, E3); per sample the number of motion frames its memory is built from.
3. ``TrainModules.forward`` (the part with trainable parameters, one call so that DDP sees one
   forward): image embedding (zeroed where the reference is dropped) -> ``project_image``;
   Reference Net on the reference (``encode_reference``); audio tokens from the audio encoder
   (zeroed where audio is dropped); z_t = (1 - t) z_0 + t eps; per group of samples with the
   same motion-frame count, the memory from those motion frames (``motion_state``, T5; count 0 =
   empty memory) and the Diffusion Net's velocity; the per-sample velocity MSE (L1).

Motion mask (T5): padding frames (mask False) never enter the memory in ``motion_padding='drop'``
mode. Temporal contexts are opaque per component (a linear memory, a frame window, ...), so they
cannot be zeroed per sample; instead samples are grouped by how many real frames they have
(padding is always at the front, the oldest end, so the real frames are the newest ``n``) and
each group gets its own ``motion_state``. Where the temporal modules can merge memories of
disjoint groups (``merge_contexts``, e.g. the linear memory), the groups' states are merged and
the Diffusion Net runs once for the batch; otherwise each group gets its own forward. Samples do
not interact inside the network (no batch statistics), so either equals one call per sample.

Phases (L2, L3): ``apply_phase`` sets ``requires_grad`` per module group; in the ``spatial`` phase
the step uses single frames (F = 1) with no audio, no emotion and no memory (stage 1 trains the
spatial layers on "reference frame -> another frame of the same video").

Robust training (L5) and the update happen in ``memo_zoo.train.loop``; ``robust_objective``
here turns per-sample losses into the objective and the count of dropped samples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from memo_zoo.errors import MemoZooError
from memo_zoo.model.memo_net import MemoNet
from memo_zoo.train.colour_augment import ColourAugmentConfig, draw_colour
from memo_zoo.train.config import ConditionDropoutConfig, LossTarget, TimestepConfig
from memo_zoo.train.latent_cache import LatentCache
from memo_zoo.train.loss import data_loss_from_velocity_loss, noisy_latents, sample_times, velocity_loss
from memo_zoo.train.motion_augment import MotionAugmentConfig, augment_motion
from memo_zoo.train.clip_regions import ClipRegions
from memo_zoo.train.regions import LossRegion, region_weight_map, region_weight_maps

# Dropout masks are drawn in this order, so adding a condition later cannot shift the others.
CONDITIONS = ("emotion", "reference", "audio", "motion")


@dataclass
class Draws:
    """Random draws of one micro-batch: times (B,), noise like the target latents, keep masks (B,).

    ``keep[c][b]`` is False when condition ``c`` is dropped for sample ``b`` (L6).
    """

    t: Tensor
    noise: Tensor
    keep: dict[str, Tensor]


def draw(generator: torch.Generator, latent_shape: tuple[int, ...], timesteps: TimestepConfig,
         dropout: ConditionDropoutConfig) -> Draws:
    """Draw t, noise and the dropout masks for latents of ``latent_shape`` (B, F, c, h, w), on CPU.

    CPU draws keep a run's numbers the same on every device type; they are moved by the caller.
    """
    batch = latent_shape[0]
    t = sample_times(batch, timesteps.distribution, timesteps.mean, timesteps.std, generator)
    noise = torch.randn(latent_shape, generator=generator)
    keep = {name: torch.rand(batch, generator=generator) >= getattr(dropout, name) for name in CONDITIONS}
    return Draws(t=t, noise=noise, keep=keep)


def padded_waveform(audio: Tensor, window: int) -> Tensor:
    """Per-frame audio windows (B, F, W, P), W = 2 window + 1 -> the waveform (B, (F + 2 window) P).

    Window w of frame i holds the audio of frame i + w - window, so the first frame's left windows,
    every frame's centre and the last frame's right windows are the frames from window before
    the clip to window after it, in order: the waveform an audio encoder needs with
    ``pad_frames = window`` so that the clip's edge frames see their real neighbours (A5).
    """
    if audio.dim() != 4 or audio.shape[2] != 2 * window + 1:
        raise ValueError(f"audio windows must be (B, F, {2 * window + 1}, P); got {tuple(audio.shape)}")
    left = audio[:, 0, :window]
    centre = audio[:, :, window]
    right = audio[:, -1, window + 1:]
    return torch.cat([left, centre, right], dim=1).flatten(1)


def motion_counts(mask: Tensor, mode: str) -> Tensor:
    """Motion frames each sample's memory is built from (B,) long, from ``motion_mask`` (B, M).

    'drop': the number of real frames, which must be the newest ones (padding at the front, as
    ``TalkingHeadSamples`` and ``collate`` put it); 'keep': all M slots.
    """
    b, m = mask.shape
    if mode == "keep":
        return torch.full((b,), m, dtype=torch.long)
    if mode != "drop":
        raise ValueError(f"unknown motion_padding mode {mode!r}")
    counts = mask.sum(dim=1)
    # A suffix of length n: exactly the last n slots are True.
    suffix = torch.arange(m).unsqueeze(0) >= (m - counts).unsqueeze(1)
    if not torch.equal(suffix, mask.bool()):
        raise ValueError("motion_mask must mark a suffix of real frames (padding at the oldest end)")
    return counts.long()


def encode_frames(vae: Any, frames: Tensor, chunk: int) -> Tensor:
    """Frozen VAE encode of (N, 3, H, W) frames in chunks of ``chunk`` (bounded memory at 512 px)."""
    outs = [vae.encode(frames[i:i + chunk]) for i in range(0, frames.shape[0], chunk)]
    return torch.cat(outs).float()


def encode_keyed(vae: Any, frames: Tensor, keys: Tensor | None, chunk: int, cache: LatentCache | None) -> Tensor:
    """``encode_frames`` through ``cache`` when there is one and the frames carry their (clip,
    frame) ``keys`` (N, 2); the batch layout of the result is the same either way."""
    if cache is None or keys is None:
        return encode_frames(vae, frames, chunk)
    return cache.encode(frames, keys, lambda missing: encode_frames(vae, missing, chunk))


def loss_weight_maps(regions: list[LossRegion], spatial: tuple[int, int], clip_regions: ClipRegions | None,
                     target_keys: Tensor | None) -> Tensor | None:
    """The loss map: (H, W) for fixed boxes, (B, H, W) when regions are measured per clip (the
    sample's clip is the first target frame's clip index)."""
    measured = [r.name for r in regions if r.source == "landmarks"]
    if not measured:
        return region_weight_map(regions, *spatial)
    if clip_regions is None or target_keys is None:
        raise MemoZooError(f"loss regions {measured} are measured per clip (source: landmarks) but the batch "
                           "carries no clip keys or the trainer measured no boxes")
    clips = target_keys[:, 0, 0].tolist()
    return region_weight_maps(regions, *spatial, {name: clip_regions.of(name, clips) for name in measured})


@torch.no_grad()
def prepare_inputs(batch: dict[str, Any], vae: Any, generator: torch.Generator, *, single_frame: bool,
                   use_audio: bool, timesteps: TimestepConfig, dropout: ConditionDropoutConfig,
                   motion_padding: str, audio_window: int, no_emotion: int, device: torch.device,
                   vae_batch: int = 32, loss_regions: list[LossRegion] | None = None,
                   motion_augment: MotionAugmentConfig | None = None,
                   colour_augment: ColourAugmentConfig | None = None,
                   latent_cache: LatentCache | None = None,
                   clip_regions: ClipRegions | None = None) -> dict[str, Any]:
    """The tensors ``TrainModules.forward`` reads, from a collated batch (see the module docstring).

    ``single_frame``: the spatial phase (L2): the first target frame only, no memory, no audio,
    no emotion. ``use_audio``: build the padded waveform for the audio encoder. ``loss_regions``:
    the loss's weight map over the latent grid (``memo_zoo.train.regions``). ``motion_augment``:
    corruption of the motion latents (``memo_zoo.train.motion_augment``), drawn after everything else.
    ``colour_augment``: a colour shift of the sample's frames (``memo_zoo.train.colour_augment``),
    drawn before everything else and applied to the frames before they are encoded.
    ``latent_cache``: latents of frames already encoded this run, looked up by the batch's frame
    keys (``memo_zoo.train.latent_cache``); not used when the frames are recoloured.
    ``clip_regions``: per-clip boxes of ``source: landmarks`` loss regions
    (``memo_zoo.train.clip_regions``): the loss map is then one per sample, from its clip's boxes.
    """
    target = batch["target"].to(device)
    target_keys = batch.get("target_keys")
    if single_frame:
        target = target[:, :1]
        target_keys = None if target_keys is None else target_keys[:, :1]
    b, f = target.shape[:2]
    reference = batch["reference"].to(device)
    colour = draw_colour(b, colour_augment, generator) if colour_augment is not None else None
    if colour is not None:
        target, reference = colour[0].apply(target), colour[0].apply(reference)
        latent_cache = None  # recoloured frames are not the frames the keys name
    z0 = encode_keyed(vae, target.flatten(0, 1), None if target_keys is None else target_keys.flatten(0, 1),
                      vae_batch, latent_cache)
    z0 = z0.reshape(b, f, *z0.shape[1:])
    draws = draw(generator, tuple(z0.shape), timesteps, dropout)
    keep = {name: mask.to(device) for name, mask in draws.keep.items()}
    inputs: dict[str, Any] = {
        "z0": z0,
        "noise": draws.noise.to(device=device, dtype=z0.dtype),
        "t": draws.t.to(device),
        "reference_images": reference,
        "reference_latents": encode_keyed(vae, reference, batch.get("reference_key"), vae_batch, latent_cache),
        "keep_reference": keep["reference"],
        "keep_audio": keep["audio"],
        "num_frames": f,
        "loss_weights": loss_weight_maps(loss_regions or [], z0.shape[-2:], clip_regions, batch.get("target_keys")),
    }
    if single_frame:
        inputs.update(motion_latents=None, motion_count=torch.zeros(b, dtype=torch.long, device=device),
                      waveform=None, emotion=None)
        return inputs
    counts = motion_counts(batch["motion_mask"], motion_padding) * draws.keep["motion"].long()
    motion = batch["motion"]
    if colour is not None:
        # Recoloured where it lies (CPU after collate): the mask below indexes it there.
        motion = colour[1].apply(motion)
    m = motion.shape[1]
    used = torch.arange(m).unsqueeze(0) >= (m - counts).unsqueeze(1)  # (B, M): the newest count frames
    latents = None
    if bool(used.any()):
        motion_keys = batch.get("motion_keys")
        encoded = encode_keyed(vae, motion[used].to(device), None if motion_keys is None else motion_keys[used],
                               vae_batch, latent_cache)
        latents = encoded.new_zeros(b, m, *encoded.shape[1:])
        latents[used.to(device)] = encoded
        if motion_augment is not None:
            latents = augment_motion(latents, motion_augment, generator)
    emotion = batch["emotion"].to(device)
    inputs.update(
        motion_latents=latents,
        motion_count=counts.to(device),
        waveform=padded_waveform(batch["audio"], audio_window).to(device) if use_audio else None,
        emotion=torch.where(keep["emotion"], emotion, torch.full_like(emotion, no_emotion)),
    )
    return inputs


class TrainModules(nn.Module):
    """Every module with trainable parameters (the network and the encoders) behind ONE forward.

    DDP synchronises gradients of the module it wraps and only through its ``forward``, so the
    encoders live here rather than beside the network. Encoders that are not ``nn.Module``s are
    called but have nothing to train or save.
    """

    def __init__(self, net: MemoNet, image_encoder: Any, audio_encoder: Any | None, fps: float,
                 audio_window: int, loss_target: LossTarget = "velocity") -> None:
        super().__init__()
        self.net = net
        self.image_encoder = image_encoder
        self.audio_encoder = audio_encoder
        self.fps = float(fps)
        self.audio_window = int(audio_window)
        self.loss_target = loss_target
        # One forward for samples of every motion-frame count where the temporal modules can merge
        # their memories (``_merged_state``); off = one forward per count, the reference path.
        self.merge_groups = True

    def forward(self, inputs: dict[str, Any]) -> Tensor:
        """Per-sample loss (B,) float32: the velocity MSE (L1), or with ``loss_target="data"`` the
        MSE of the clean latents recovered from the velocity (the release's); see the module
        docstring for the flow."""
        net = self.net
        z0, noise, t = inputs["z0"], inputs["noise"], inputs["t"]
        b, f = z0.shape[:2]
        keep_reference = inputs["keep_reference"]
        embedding = self.image_encoder.encode(inputs["reference_images"])
        # §10's unconditional branch: no face embedding = a zero embedding, then projected.
        embedding = embedding * keep_reference.unsqueeze(1).to(embedding.dtype)
        tokens = net.project_image(embedding)
        reference = net.encode_reference(inputs["reference_latents"], tokens).hidden_states
        audio = None
        if inputs["waveform"] is not None and self.audio_encoder is not None:
            audio = self.audio_encoder.encode(inputs["waveform"], f, self.fps, self.audio_window)
            audio = audio * inputs["keep_audio"].reshape(b, 1, 1, 1).to(audio.dtype)
        emotion = inputs["emotion"]
        z_t = noisy_latents(z0, noise, t)
        counts = inputs["motion_count"]
        motion = inputs["motion_latents"]
        groups = torch.unique(counts).tolist()
        # Each group's memory from its own motion-frame count (T5), built once whichever path runs.
        parts = []
        for count in groups:
            idx = None if len(groups) == 1 else (counts == count).nonzero().squeeze(1)
            rows = slice(None) if idx is None else idx
            state = net.motion_state(motion[rows][:, motion.shape[1] - count:], tokens[rows]) if count > 0 else None
            parts.append((idx, state))
        merged = self._merged_state(parts, b) if len(parts) > 1 else None
        if merged is not None:
            # One forward for the whole batch: the groups' memories merged into one state.
            mask = None if bool(keep_reference.all()) else keep_reference
            return self._loss(net(z_t, t, tokens, audio, emotion, reference, merged, mask), z0, noise, t,
                              inputs.get("loss_weights"))
        losses = z0.new_zeros(b, dtype=torch.float32)
        for idx, state in parts:

            def pick(x: Any) -> Any:
                return x if idx is None or x is None else x[idx]

            group_keep = pick(keep_reference)
            group_mask = None if bool(group_keep.all()) else group_keep
            velocity = net(pick(z_t), pick(t), pick(tokens), pick(audio), pick(emotion),
                           {name: pick(states) for name, states in reference.items()}, state, group_mask)
            weights = inputs.get("loss_weights")
            group_loss = self._loss(velocity, pick(z0), pick(noise), pick(t),
                                    pick(weights) if weights is not None and weights.dim() == 3 else weights)
            losses = group_loss if idx is None else losses.index_copy(0, idx, group_loss)
        return losses

    def _loss(self, velocity: Tensor, z0: Tensor, noise: Tensor, t: Tensor, weights: Tensor | None) -> Tensor:
        loss = velocity_loss(velocity, z0, noise, weights)
        return data_loss_from_velocity_loss(loss, t) if self.loss_target == "data" else loss

    def _merged_state(self, parts: list[tuple[Tensor, Any]], batch: int) -> Any:
        """The groups' memories (``parts``: each group's sample indices with its state, None for an
        empty memory) merged into one state for the batch, or None when ``merge_groups`` is off or
        the network's temporal modules cannot merge theirs (``merge_states``): the caller then runs
        a forward per group. Samples do not interact in the network, so both give the same loss
        (tests/unit/test_train_step.py)."""
        merge = getattr(self.net, "merge_states", None)
        if not self.merge_groups or merge is None:
            return None
        return merge([(idx, self.net.new_state(len(idx)) if state is None else state) for idx, state in parts],
                     batch)


def robust_objective(losses: Tensor, threshold: float | None) -> tuple[Tensor, Tensor]:
    """(objective, keep) for per-sample losses (B,) under robust training (L5).

    A sample whose loss exceeds ``threshold`` is left out of the update; the objective is the mean
    over the kept samples. With none kept the objective is 0 * sum (every parameter still gets a
    zero gradient, so DDP ranks stay in step).
    """
    if threshold is None:
        keep = torch.ones_like(losses, dtype=torch.bool)
    else:
        keep = losses.detach() <= threshold
    kept = keep.to(losses.dtype)
    objective = (losses * kept).sum() / kept.sum().clamp(min=1.0)
    return objective, keep


# ---- phases (L2, L3) ------------------------------------------------------------------------

# The released network's site modules, under the release's own names: its finetune.py selects
# trainable parameters by these names (configs/finetune.yaml: trainable_modules motion_modules,
# audio_modules).
RELEASED_SITE = re.compile(r"(?:^|\.)(?:motion_modules|audio_modules)\.\d+$")


def site_modules(net: nn.Module) -> list[nn.Module]:
    """The modules MEMO adds at every Diffusion Net site, its temporal and audio modules (L3), for
    either network family: the zoo's ``DiffusionNet`` holds them as ``blocks[i].temporal`` /
    ``.audio``; the released network (``memo_released``) as ``*.motion_modules.<j>`` /
    ``*.audio_modules.<j>``, the names the release itself fine-tunes by."""
    diffusion = net.diffusion_net
    blocks = getattr(diffusion, "blocks", None)
    if blocks is not None:
        return [module for block in blocks for module in (block.audio, block.temporal)]
    return [module for name, module in diffusion.named_modules() if RELEASED_SITE.search(name)]


def new_module_parameters(modules: TrainModules) -> list[nn.Parameter]:
    """Parameters of the modules MEMO adds (every site's audio and temporal module) and of the
    encoders: what the 'new' phase trains (L3)."""
    params = [p for module in site_modules(modules.net) for p in module.parameters()]
    for encoder in (modules.image_encoder, modules.audio_encoder):
        if isinstance(encoder, nn.Module):
            params += list(encoder.parameters())
    return params


def new_module_prefixes(net: nn.Module) -> tuple[str, ...]:
    """State-dict name prefixes ("<name>.") of the modules MEMO adds at every site (audio and
    temporal): what a stage-1 result does not decide (spec L2, L3)."""
    added = {id(m) for m in site_modules(net)}
    return tuple(sorted(f"{name}." for name, module in net.named_modules() if id(module) in added))


def phase_parameters(modules: TrainModules, trainable: str) -> set[int]:
    """ids of the parameters a phase trains (before intersecting with what may train at all)."""
    everything = {id(p) for p in modules.parameters()}
    sites = {id(p) for module in site_modules(modules.net) for p in module.parameters()}
    new = {id(p) for p in new_module_parameters(modules)}
    if trainable == "all":
        return everything
    if trainable == "new":
        return new
    if trainable == "temporal_audio":
        # The release's fine-tuning (configs/finetune.yaml): motion and audio modules only; the
        # Reference Net, the spatial layers, the image projector and the encoders stay frozen.
        return sites
    if trainable == "spatial":
        # Reference Net + Diffusion Net spatial layers + image projector (L2): the net minus the
        # new modules; the encoders are not part of stage 1.
        return {id(p) for p in modules.net.parameters()} - new
    raise ValueError(f"unknown trainable set {trainable!r}")


def apply_phase(modules: TrainModules, trainable: str, allowed: Iterable[nn.Parameter]) -> int:
    """Set ``requires_grad`` for a phase: True on its parameters among ``allowed`` (the ones that
    were trainable when the run was built; a frozen pretrained backbone stays frozen), False on the
    rest. Modules left with no trainable parameter go to eval mode (no dropout noise from frozen
    parts). Returns the number of trainable parameter elements."""
    chosen = phase_parameters(modules, trainable) & {id(p) for p in allowed}
    count = 0
    for p in modules.parameters():
        p.requires_grad_(id(p) in chosen)
        count += p.numel() if id(p) in chosen else 0
    set_train_modes(modules)
    return count


def set_train_modes(modules: nn.Module) -> None:
    """train() everywhere, then eval() on every submodule whose parameters are all frozen."""
    modules.train()
    for module in modules.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


# ---- compatibility of the recipe's parts --------------------------------------------------------

def check_parts(net: MemoNet, vae: Any, image_encoder: Any, audio_encoder: Any | None, size: int,
                labels: int, audio_fusion: Any) -> None:
    """Raise ``MemoZooError`` naming the recipe fields when the parts do not fit together."""
    cfg = net.network_config
    problems = []
    channels = getattr(vae, "latent_channels", None)
    if channels != cfg.latent_channels:
        problems.append(f"model.vae gives {channels} latent channels but model.network.latent_channels is "
                        f"{cfg.latent_channels}; set model.network.latent_channels: {channels}")
    downsample = int(getattr(vae, "downsample", 1))
    factor = 2 ** (len(cfg.block_out_channels) - 1)
    if size % downsample or (size // downsample) % factor:
        problems.append(f"task.samples.size {size} px gives {size / downsample:g} px latents through the VAE "
                        f"(downsample {downsample}); the network needs a multiple of {factor}")
    embed = getattr(image_encoder, "embed_dim", None)
    if embed != cfg.image_embed_dim:
        problems.append(f"model.image_encoder gives {embed}-d embeddings but model.network.image_embed_dim is "
                        f"{cfg.image_embed_dim}")
    if audio_encoder is not None:
        tokens, width = getattr(audio_encoder, "token_count", None), getattr(audio_encoder, "token_dim", None)
        if tokens != cfg.audio_tokens or width != cfg.audio_dim:
            problems.append(f"model.audio_encoder gives {tokens} tokens of {width} per frame but the network reads "
                            f"{cfg.audio_tokens} of {cfg.audio_dim} (model.network.audio_tokens / audio_dim)")
    classes = getattr(audio_fusion, "num_emotion_classes", None)
    if classes is not None and getattr(audio_fusion, "emotion_conditioning", True) and classes != labels:
        problems.append(f"model.audio_fusion.num_emotion_classes is {classes} but task.samples.label_set has "
                        f"{labels} labels")
    if problems:
        raise MemoZooError("task train: the recipe's model parts do not fit together:\n  " + "\n  ".join(problems))
