"""Sampling a video clip by clip: the frames of spec §6 (I1-I3, T6, A2-A5, §10) as a stream.

``ClipSampler`` yields the frames of every clip, in order; per video (B = 1):

1. Once per video: the image embedding -> image tokens (A4), the reference latent through the VAE
   and the Reference Net's states of it (A2), one row per guidance level with that level's tokens.
2. The temporal context of the first clip: the reference latent repeated ``motion_frames`` times,
   folded in by ``MemoNet.motion_state`` (spec §10).
3. Per clip: audio tokens from the clip's audio with ``pad_frames`` frames of real audio on each
   side (A5, ``memo_zoo.generate.inputs.clip_waveform``); noise from a generator seeded by
   (seed, clip) (``noise: per_clip``), or drawn clip after clip from one generator seeded once
   (``noise: sequential``, the released pipeline's); the sampler's ``solve`` integrates the ODE
   from t = 1 to 0 (I3) with a velocity that applies classifier-free guidance (I2) on ONE batched
   forward over every guidance level (``memo_zoo.generate.guidance``); the clean latents are
   decoded by the VAE and the clip's frames yielded (the last clip truncated), so memory does not
   grow with the audio's length.
4. After each clip but the last, the temporal context is updated ONCE from that clip's clean
   latents (T6; ``motion_source: latents``), or from its last ``motion_frames`` frames decoded,
   clamped to [-1, 1] and encoded again (``motion_source: decoded``, the released pipeline, Q17);
   every denoising step of the next clip reads that same state.

Expression guidance (E6, ``memo_zoo.generate.expression_guidance``): with a ``guide``, every
velocity, once guided and possibly reused by the cache, is steered towards the clip's emotion label.

Fewer network evaluations (issue 19): with ``cfg.interval`` the velocity at a time outside the
interval is the conditional level's alone (one row; its own reference states and temporal
context, kept beside the guided levels' and updated from the same clean latents); with ``cache``
(``StepCache``, TeaCache's rule) a velocity evaluation may reuse the last computed one. Every
forward is counted (``network_evaluations``, ``evaluations_per_frame``), one per guidance level
it evaluates.

Classifier-free guidance (I2, §10): the unconditional level has a zero face embedding (projected
to tokens as in training), zero audio tokens, the "no emotion" index and reference attention off
(``reference_mask`` False). The temporal context and the reference states of each level are built
with that level's image tokens, as training builds them for a sample whose reference was dropped
(the level without reference never reads its reference states, except through the released
network's token tiling, ``released_quirks``, which reads them as the release computed them; the
conditional branch outside the guidance interval is a batch of one, so there its motion frames
read its own tokens).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from memo_zoo.generate.config import GenerateConfig, StepCacheConfig
from memo_zoo.generate.expression_guidance import ExpressionGuide
from memo_zoo.generate.guidance import Level, conditional_levels, guidance_levels
from memo_zoo.generate.inputs import clip_waveform
from memo_zoo.generate.loading import GeneratorModel

GUIDED, CONDITIONAL = "guided", "conditional"  # the branches a velocity evaluation may run


def clip_seed(seed: int, clip: int) -> int:
    """A well-mixed seed per (seed, clip): a clip's noise does not depend on how many clips came before."""
    return int(np.random.SeedSequence([int(seed), int(clip)]).generate_state(2, dtype=np.uint64)[0] >> 1)


def _to_uint8(frames: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    pixels = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def relative_change(sample: Tensor, previous: Tensor) -> float:
    """TeaCache's relative L1 distance, ``mean|sample - previous| / mean|previous|`` (inf when
    ``previous`` is all zeros: nothing to compare against, so the network runs)."""
    scale = float(previous.abs().mean())
    if scale == 0.0:
        return math.inf
    return float((sample - previous).abs().mean()) / scale


class StepCache:
    """TeaCache's reuse rule around one velocity function (``StepCacheConfig``), per clip.

    ``velocity(sample, branch, compute)`` returns ``compute()`` (a network evaluation) or a reuse
    of the last one: the relative change of ``sample`` against the previous call's is summed
    since the last evaluation, and while the sum is below the threshold nothing is computed. A new
    ``branch`` (the guidance interval's edge: other levels, other velocities) or a ``reset`` (a
    new clip: new noise, t back at 1) always computes. ``reused`` counts the evaluations saved.
    """

    def __init__(self, config: StepCacheConfig):
        self.config = config
        self.reused = 0
        self.reset()

    def reset(self) -> None:
        self.branch: str | None = None
        self.previous: Tensor | None = None  # the last call's input (TeaCache compares consecutive steps)
        self.computed: tuple[Tensor, Tensor] | None = None  # (input, velocity) of the last evaluation
        self.accumulated = 0.0

    def velocity(self, sample: Tensor, branch: str, compute: Callable[[], Tensor]) -> Tensor:
        if self.config.kind == "none":
            return compute()
        reuse = False
        if branch == self.branch and self.computed is not None and self.previous is not None:
            self.accumulated += relative_change(sample, self.previous)
            reuse = self.accumulated < self.config.threshold
        self.previous = sample.clone()  # kept across solver steps: a solver may update its sample in place
        if reuse:
            self.reused += 1
            computed_input, computed = self.computed
            if self.config.kind == "output":
                return computed
            return sample + (computed - computed_input)  # residual: velocity - input, carried over
        velocity = compute()
        self.branch, self.computed, self.accumulated = branch, (self.previous, velocity.clone()), 0.0
        return velocity


@dataclass
class Branch:
    """One set of guidance levels evaluated together: a row per level of the image tokens, the
    Reference Net's states, the reference mask and the temporal context (updated once per clip)."""

    name: str
    levels: list[tuple[Level, float]]
    tokens: Tensor
    reference: Any
    reference_mask: Tensor | None
    state: Any

    @property
    def weights(self) -> list[float]:
        return [weight for _, weight in self.levels]


class ClipSampler:
    """The per-clip loop of the module docstring, as an iterable of (H, W, 3) uint8 frames.

    After the iteration, ``clip_evaluations`` holds per clip (network evaluations, frames kept):
    an evaluation is one guidance level's forward of the clip (a batched forward of L levels
    counts L); an evaluation reused by the step cache counts nothing.
    """

    def __init__(self, model: GeneratorModel, config: GenerateConfig, portrait: np.ndarray, audio: np.ndarray,
                 fps: float, frames: int, emotions: Tensor, no_emotion: int, seed: int, dtype: torch.dtype,
                 guide: ExpressionGuide | None = None):
        self.model, self.config, self.guide = model, config, guide
        self.portrait, self.audio, self.fps, self.frames = portrait, audio, fps, frames
        self.emotions, self.no_emotion, self.seed, self.dtype = emotions, no_emotion, seed, dtype
        self.device = model.device
        has_audio = model.audio_encoder is not None
        self.levels = guidance_levels(config.cfg, has_audio)
        conditional = conditional_levels(has_audio)
        interval = config.cfg.interval
        # A conditional-only branch exists when some time in [0, 1] is outside the interval and
        # the guided levels are not already that one pass (scale 1).
        outside = interval is not None and not (interval[0] <= 0.0 and interval[1] >= 1.0)
        self.conditional = conditional if outside and self.levels != conditional else None
        self.cache = StepCache(config.cache)
        self.clip_evaluations: list[tuple[int, int]] = []

    @property
    def network_evaluations(self) -> int:
        """Forward passes of the diffusion net over the whole video, one per guidance level evaluated."""
        return sum(count for count, _ in self.clip_evaluations)

    @property
    def evaluations_per_frame(self) -> float:
        """The evaluations a generated frame went through (its clip's count), averaged over the
        frames: steps x levels for plain Euler with guidance, fewer with an interval or a cache."""
        frames = sum(kept for _, kept in self.clip_evaluations)
        return sum(count * kept for count, kept in self.clip_evaluations) / max(1, frames)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        with torch.inference_mode(), self.autocast():
            yield from self._run()

    def _branch(self, name: str, levels: list[tuple[Level, float]], with_face: Tensor, without_face: Tensor,
                reference_latent: Tensor) -> Branch:
        """Once per video (A2, A4, §10): one row per level of tokens, reference states and the first
        clip's context (the reference latent repeated motion_frames times, or none: ``first_memory``)."""
        net, count = self.model.net, len(levels)
        tokens = torch.cat([with_face if level.reference else without_face for level, _ in levels])
        reference, reference_mask = None, None
        if any(level.reference for level, _ in levels):
            reference = net.encode_reference(reference_latent.repeat(count, 1, 1, 1), tokens).hidden_states
            if not all(level.reference for level, _ in levels):
                reference_mask = torch.tensor([level.reference for level, _ in levels], device=self.device)
        if self.config.first_memory == "empty":  # as motion dropout trains it: no motion frames at all
            return Branch(name, levels, tokens, reference, reference_mask, None)
        motion = reference_latent.unsqueeze(1).repeat(count, self.config.motion_frames, 1, 1, 1)
        return Branch(name, levels, tokens, reference, reference_mask, net.motion_state(motion, tokens))

    def _run(self) -> Iterator[np.ndarray]:
        model, net, cfg = self.model, self.model.net, self.config
        device = self.device
        image = torch.from_numpy(self.portrait).permute(2, 0, 1)[None].float().div(127.5).sub(1.0).to(device)

        # Once per video (A2, A4): tokens with and without the face embedding, the reference.
        embedding = model.image_encoder.encode(image)
        with_face = net.project_image(embedding)
        without_face = net.project_image(torch.zeros_like(embedding))  # §10: "no face embedding"
        reference_latent = model.vae.encode(image)
        if self.guide is not None:
            self.guide.check_latents(reference_latent)
        branches = [self._branch(GUIDED, self.levels, with_face, without_face, reference_latent)]
        if self.conditional is not None:
            branches.append(self._branch(CONDITIONAL, self.conditional, with_face, without_face, reference_latent))
        guided = branches[0]
        conditional = branches[-1]

        clip_frames = cfg.clip_frames
        clips = math.ceil(self.frames / clip_frames)
        channels, height, width = reference_latent.shape[1:]
        sampler = model.registry.build("scheduler", model.scheduler)
        # noise: sequential -- one generator for the whole video, drawn in the released (1, c, F, h, w) layout
        sequence = torch.Generator().manual_seed(int(self.seed)) if cfg.noise == "sequential" else None
        self.clip_evaluations = []
        for k in range(clips):
            audio = self._audio_tokens(k * clip_frames, branches)
            emotion = {branch.name: torch.tensor([int(self.emotions[k]) if level.emotion else self.no_emotion
                                                  for level, _ in branch.levels], dtype=torch.long, device=device)
                       for branch in branches}
            if sequence is not None:
                noise = torch.randn((1, channels, clip_frames, height, width), generator=sequence).transpose(1, 2)
            else:
                generator = torch.Generator().manual_seed(clip_seed(self.seed, k))
                noise = torch.randn((1, clip_frames, channels, height, width), generator=generator)
            noise = noise.to(device)
            evaluations = [0]
            self.cache.reset()  # new noise, t back at 1: nothing of the last clip is reused

            def forward(sample: Tensor, t: float, branch: Branch, audio=audio, emotion=emotion,
                        evaluations=evaluations) -> Tensor:
                count, weights = len(branch.levels), branch.weights
                evaluations[0] += count
                batch = sample.repeat(count, 1, 1, 1, 1) if count > 1 else sample
                times = torch.full((count,), float(t), device=device)
                out = net(batch, times, branch.tokens, audio[branch.name], emotion[branch.name], branch.reference,
                          branch.state, branch.reference_mask).float()
                if count == 1 and weights[0] == 1.0:
                    return out
                velocity = weights[0] * out[0:1]
                for i in range(1, count):
                    velocity = velocity + weights[i] * out[i:i + 1]
                return velocity

            def velocity(sample: Tensor, t: float, forward=forward, label=int(self.emotions[k])) -> Tensor:
                # I2 inside the guidance interval (or without one); the conditional level alone outside it.
                branch = guided if cfg.cfg.guided_at(t) else conditional
                guided_velocity = self.cache.velocity(sample, branch.name, lambda: forward(sample, t, branch))
                if self.guide is None:
                    return guided_velocity
                # E6, after CFG and the cache; the portrait's latents for a reference-conditioned guide
                return self.guide.velocity(sample, t, guided_velocity, label, reference_latent)

            latents = _solve(sampler, noise.float(), velocity)
            chunk = cfg.fast_path.decode_chunk  # frames per VAE decode / re-encode call: bounds memory at 512 px
            keep = min(clip_frames, self.frames - k * clip_frames)
            self.clip_evaluations.append((evaluations[0], keep))
            past = k + 1 < clips and cfg.motion_source == "decoded"
            first_past = keep - min(cfg.motion_frames, keep)
            decoded_past = []
            for start in range(0, keep, chunk):
                decoded = model.vae.decode(latents[0, start:min(keep, start + chunk)].to(reference_latent.dtype))
                if past and start + decoded.shape[0] > first_past:
                    decoded_past.append(decoded[max(0, first_past - start):])
                yield from _to_uint8(decoded)
            if k + 1 < clips:
                # T6: the context is updated once per clip; every step of the next clip (and
                # every guidance level) reads this one state.
                if past:  # Q17: the released pipeline re-encodes its last decoded frames
                    pixels = torch.cat(decoded_past).clamp(-1, 1)
                    clean = torch.cat([model.vae.encode(pixels[start:start + chunk])
                                       for start in range(0, pixels.shape[0], chunk)])[None]
                else:
                    clean = latents.to(reference_latent.dtype)
                for branch in branches:
                    branch.state = net.motion_state(clean.repeat(len(branch.levels), 1, 1, 1, 1), branch.tokens,
                                                    branch.state)

    def _audio_tokens(self, first: int, branches: list[Branch]) -> dict[str, Tensor | None]:
        """Each branch's audio tokens of the clip starting at frame ``first`` (A5): the clip's tokens
        in the rows of levels with audio, zeros in the others (§10); None where no level has audio."""
        model = self.model
        heard = [branch for branch in branches if any(level.audio for level, _ in branch.levels)]
        out: dict[str, Tensor | None] = {branch.name: None for branch in branches}
        if model.audio_encoder is None or not heard:
            return out
        pad = model.audio_window
        wave = clip_waveform(self.audio, first, self.config.clip_frames, pad, self.fps)
        tokens = model.audio_encoder.encode(torch.from_numpy(wave)[None].to(self.device), self.config.clip_frames,
                                            self.fps, pad)
        for branch in heard:
            levels = branch.levels
            if all(level.audio for level, _ in levels):
                out[branch.name] = tokens.repeat(len(levels), 1, 1, 1)
            else:
                zeros = torch.zeros_like(tokens)  # §10: zero audio in the branches without audio
                out[branch.name] = torch.cat([tokens if level.audio else zeros for level, _ in levels])
        return out


def _solve(sampler: Any, noise: Tensor, velocity) -> Tensor:
    """The sampler's own ``solve`` (multi-evaluation and stateful solvers need it), else Euler-style
    ``step`` calls along ``timesteps()``."""
    if hasattr(sampler, "solve"):
        return sampler.solve(noise, velocity)
    times = sampler.timesteps().tolist()
    sample = noise
    for t, t_next in zip(times[:-1], times[1:]):
        sample = sampler.step(sample, velocity(sample, t), t, t_next)
    return sample
