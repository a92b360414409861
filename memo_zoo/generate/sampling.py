"""Sampling a video clip by clip: the frames of spec §6 (I1-I3, T6, A2-A5, §10) as a stream.

``ClipSampler`` yields the frames of every clip, in order; per video (B = 1):

1. Once per video: the image embedding -> image tokens (A4), the reference latent through the VAE
   and the Reference Net's states of it (A2).
2. The temporal context of the first clip: the reference latent repeated ``motion_frames`` times,
   folded in by ``MemoNet.motion_state`` (spec §10).
3. Per clip: audio tokens from the clip's audio with ``pad_frames`` frames of real audio on each
   side (A5, ``memo_zoo.generate.inputs.clip_waveform``); noise from a generator seeded by
   (seed, clip); the sampler's ``solve`` integrates the ODE from t = 1 to 0 (I3) with a velocity
   that applies classifier-free guidance (I2) on ONE batched forward over every guidance level
   (``memo_zoo.generate.guidance``); the clean latents are decoded by the VAE and the clip's
   frames yielded (the last clip truncated), so memory does not grow with the audio's length.
4. After each clip but the last, the temporal context is updated ONCE from that clip's clean
   latents (T6); every denoising step of the next clip reads that same state.

Classifier-free guidance (I2, §10): the unconditional level has a zero face embedding (projected
to tokens as in training), zero audio tokens, the "no emotion" index and reference attention off
(``reference_mask`` False). The temporal context of each level is built with that level's image
tokens, as training builds it for a sample whose reference was dropped.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from memo_zoo.generate.config import GenerateConfig
from memo_zoo.generate.guidance import guidance_levels
from memo_zoo.generate.inputs import clip_waveform
from memo_zoo.generate.loading import GeneratorModel

DECODE_CHUNK = 8  # frames per VAE decode call: bounds activation memory at 512 px


def clip_seed(seed: int, clip: int) -> int:
    """A well-mixed seed per (seed, clip): a clip's noise does not depend on how many clips came before."""
    return int(np.random.SeedSequence([int(seed), int(clip)]).generate_state(2, dtype=np.uint64)[0] >> 1)


def _to_uint8(frames: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    pixels = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


class ClipSampler:
    """The per-clip loop of the module docstring, as an iterable of (H, W, 3) uint8 frames."""

    def __init__(self, model: GeneratorModel, config: GenerateConfig, portrait: np.ndarray, audio: np.ndarray,
                 fps: float, frames: int, emotions: Tensor, no_emotion: int, seed: int, dtype: torch.dtype):
        self.model, self.config = model, config
        self.portrait, self.audio, self.fps, self.frames = portrait, audio, fps, frames
        self.emotions, self.no_emotion, self.seed, self.dtype = emotions, no_emotion, seed, dtype
        self.device = model.device
        self.levels = guidance_levels(config.cfg, model.audio_encoder is not None)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        with torch.inference_mode(), self.autocast():
            yield from self._run()

    def _run(self) -> Iterator[np.ndarray]:
        model, net, cfg = self.model, self.model.net, self.config
        device, levels = self.device, self.levels
        count = len(levels)
        image = torch.from_numpy(self.portrait).permute(2, 0, 1)[None].float().div(127.5).sub(1.0).to(device)

        # Once per video (A2, A4): tokens with and without the face embedding, the reference.
        embedding = model.image_encoder.encode(image)
        with_face = net.project_image(embedding)
        without_face = net.project_image(torch.zeros_like(embedding))  # §10: "no face embedding"
        tokens = torch.cat([with_face if level.reference else without_face for level, _ in levels])
        reference_latent = model.vae.encode(image)
        reference, reference_mask = None, None
        if any(level.reference for level, _ in levels):
            states = net.encode_reference(reference_latent, with_face).hidden_states
            reference = {name: value.repeat(count, *([1] * (value.dim() - 1))) for name, value in states.items()}
            if not all(level.reference for level, _ in levels):
                reference_mask = torch.tensor([level.reference for level, _ in levels], device=device)
        weights = [weight for _, weight in levels]

        # First clip's context: the reference latent repeated motion_frames times (§10).
        motion = reference_latent.unsqueeze(1).repeat(count, cfg.motion_frames, 1, 1, 1)
        state = net.motion_state(motion, tokens)

        clip_frames = cfg.clip_frames
        clips = math.ceil(self.frames / clip_frames)
        latent_shape = (1, clip_frames, *reference_latent.shape[1:])
        sampler = model.registry.build("scheduler", model.scheduler)
        for k in range(clips):
            audio_tokens = self._audio_tokens(k * clip_frames)
            emotion = torch.tensor([int(self.emotions[k]) if level.emotion else self.no_emotion
                                    for level, _ in levels], dtype=torch.long, device=device)
            generator = torch.Generator().manual_seed(clip_seed(self.seed, k))
            noise = torch.randn(latent_shape, generator=generator).to(device)

            def velocity(sample: Tensor, t: float, state=state, audio_tokens=audio_tokens, emotion=emotion) -> Tensor:
                batch = sample.repeat(count, 1, 1, 1, 1) if count > 1 else sample
                times = torch.full((count,), float(t), device=device)
                out = net(batch, times, tokens, audio_tokens, emotion, reference, state, reference_mask).float()
                if count == 1 and weights[0] == 1.0:
                    return out
                guided = weights[0] * out[0:1]
                for i in range(1, count):
                    guided = guided + weights[i] * out[i:i + 1]
                return guided

            latents = _solve(sampler, noise.float(), velocity)
            keep = min(clip_frames, self.frames - k * clip_frames)
            for start in range(0, keep, DECODE_CHUNK):
                decoded = model.vae.decode(latents[0, start:min(keep, start + DECODE_CHUNK)].to(reference_latent.dtype))
                yield from _to_uint8(decoded)
            if k + 1 < clips:
                # T6: the context is updated once per clip from its clean latents; every step of
                # the next clip (and every guidance level) reads this one state.
                clean = latents.to(reference_latent.dtype).repeat(count, 1, 1, 1, 1)
                state = net.motion_state(clean, tokens, state)

    def _audio_tokens(self, first: int) -> Tensor | None:
        model, levels = self.model, self.levels
        if model.audio_encoder is None or not any(level.audio for level, _ in levels):
            return None
        pad = model.audio_window
        wave = clip_waveform(self.audio, first, self.config.clip_frames, pad, self.fps)
        tokens = model.audio_encoder.encode(torch.from_numpy(wave)[None].to(self.device), self.config.clip_frames,
                                            self.fps, pad)
        if all(level.audio for level, _ in levels):
            return tokens.repeat(len(levels), 1, 1, 1)
        zeros = torch.zeros_like(tokens)  # §10: zero audio in the branches without audio
        return torch.cat([tokens if level.audio else zeros for level, _ in levels])


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
