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

Classifier-free guidance (I2, §10): the unconditional level has a zero face embedding (projected
to tokens as in training), zero audio tokens, the "no emotion" index and reference attention off
(``reference_mask`` False). The temporal context and the reference states of each level are built
with that level's image tokens, as training builds them for a sample whose reference was dropped
(the level without reference never reads its reference states, except through the released
network's token tiling, ``released_quirks``, which reads them as the release computed them).
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

DECODE_CHUNK = 8  # frames per VAE decode (and re-encode) call: bounds activation memory at 512 px


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
            reference = net.encode_reference(reference_latent.repeat(count, 1, 1, 1), tokens).hidden_states
            if not all(level.reference for level, _ in levels):
                reference_mask = torch.tensor([level.reference for level, _ in levels], device=device)
        weights = [weight for _, weight in levels]

        # First clip's context: the reference latent repeated motion_frames times (§10).
        motion = reference_latent.unsqueeze(1).repeat(count, cfg.motion_frames, 1, 1, 1)
        state = net.motion_state(motion, tokens)

        clip_frames = cfg.clip_frames
        clips = math.ceil(self.frames / clip_frames)
        channels, height, width = reference_latent.shape[1:]
        sampler = model.registry.build("scheduler", model.scheduler)
        # noise: sequential -- one generator for the whole video, drawn in the released (1, c, F, h, w) layout
        sequence = torch.Generator().manual_seed(int(self.seed)) if cfg.noise == "sequential" else None
        for k in range(clips):
            audio_tokens = self._audio_tokens(k * clip_frames)
            emotion = torch.tensor([int(self.emotions[k]) if level.emotion else self.no_emotion
                                    for level, _ in levels], dtype=torch.long, device=device)
            if sequence is not None:
                noise = torch.randn((1, channels, clip_frames, height, width), generator=sequence).transpose(1, 2)
            else:
                generator = torch.Generator().manual_seed(clip_seed(self.seed, k))
                noise = torch.randn((1, clip_frames, channels, height, width), generator=generator)
            noise = noise.to(device)

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
            past = k + 1 < clips and cfg.motion_source == "decoded"
            first_past = keep - min(cfg.motion_frames, keep)
            decoded_past = []
            for start in range(0, keep, DECODE_CHUNK):
                decoded = model.vae.decode(latents[0, start:min(keep, start + DECODE_CHUNK)].to(reference_latent.dtype))
                if past and start + decoded.shape[0] > first_past:
                    decoded_past.append(decoded[max(0, first_past - start):])
                yield from _to_uint8(decoded)
            if k + 1 < clips:
                # T6: the context is updated once per clip; every step of the next clip (and
                # every guidance level) reads this one state.
                if past:  # Q17: the released pipeline re-encodes its last decoded frames
                    pixels = torch.cat(decoded_past).clamp(-1, 1)
                    clean = torch.cat([model.vae.encode(pixels[start:start + DECODE_CHUNK])
                                       for start in range(0, pixels.shape[0], DECODE_CHUNK)])[None]
                else:
                    clean = latents.to(reference_latent.dtype)
                state = net.motion_state(clean.repeat(count, 1, 1, 1, 1), tokens, state)

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
