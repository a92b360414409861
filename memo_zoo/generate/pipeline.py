"""Talking-video generation of any length, clip by clip, streamed to an MP4 (spec §6 I1-I4, T6, E5, §10).

``generate_video(model, config)`` runs a ``GeneratorModel`` (``memo_zoo.generate.loading``) on one
portrait and one audio track. Each step lives in the module named for it:

1. Inputs (``inputs``): the portrait (short side resized, centre crop to ``size``; no face found
   only warns) and the audio at 16 kHz mono (D3); ``ceil(audio_seconds * fps)`` frames, in
   ``ceil(frames / clip_frames)`` clips (I1).
2. Emotion (``emotion``): one label per clip, the most frequent of its frames' labels (E5).
3. Sampling (``sampling``, guided as ``guidance`` says, and towards each clip's emotion by
   ``expression_guidance`` when it is set, E6): the frames, clip by clip, each clip's temporal
   context updated once from the previous clip's clean latents (T6).
4. Output: H.264 with the input audio muxed in as AAC (I4) at the source's sample rate; the frames
   are written as they come, so memory does not grow with the audio's length.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from memo_zoo.data.media import AUDIO_RATE
from memo_zoo.devices import resolve_device
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.config import GenerateConfig, check_output
from memo_zoo.generate.emotion import clip_emotions, emotion_labels, no_emotion_index
from memo_zoo.generate.expression_guidance import ExpressionGuide
from memo_zoo.generate.fast_path import apply_fast_path
from memo_zoo.generate.inputs import frame_count, load_audio, load_portrait, mux_audio
from memo_zoo.generate.loading import GeneratorModel
from memo_zoo.generate.sampling import ClipSampler
from memo_zoo.perception.vocals import separate_vocals
from memo_zoo.progress import progress as progress_bar


@dataclass
class GenerationResult:
    """What ``generate_video`` made: the file, its frames, the wall time and the speed.

    ``seconds`` is wall-clock generation time; ``fps_rate`` generated frames per wall second.
    ``network_evaluations``: forward passes of the diffusion net, one per guidance level evaluated
    (I2: a guided step of the default joint CFG counts 2); ``evaluations_per_frame``: the count a
    generated frame went through, averaged over the frames (``ClipSampler.evaluations_per_frame``:
    steps x levels for plain Euler, fewer with a guidance interval or the step cache).
    """

    path: Path
    frames: int
    seconds: float
    fps_rate: float
    video_fps: float = 0.0
    audio_seconds: float = 0.0
    clips: int = 0
    emotion_schedule: list[dict[str, Any]] = field(default_factory=list)
    network_evaluations: int = 0
    evaluations_per_frame: float = 0.0

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(1, self.frames)


def device_and_dtype(config: GenerateConfig) -> tuple[torch.device, torch.dtype]:
    """Device (config, else $MEMO_ZOO_DEVICE, through the one resolver ``memo_zoo.devices``) and
    autocast dtype (config, else bf16 on CUDA, fp32 elsewhere)."""
    device = resolve_device(config.device or "auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MemoZooError(f"device {str(device)!r} was asked for but CUDA is not available here (use device: cpu)")
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if config.dtype is not None:
        return device, dtypes[config.dtype]
    return device, torch.bfloat16 if device.type == "cuda" else torch.float32


def _check_size(model: GeneratorModel, size: int) -> None:
    """Refuse, before any work, a frame side that H.264, the VAE and the network cannot all divide."""
    downsample = int(getattr(model.vae, "downsample", 1))
    factor = 2 ** (len(model.net.network_config.block_out_channels) - 1)
    if size % 2 or size % downsample or (size // downsample) % factor:
        raise MemoZooError(f"size {size} px does not fit: frames must have an even side (H.264) divisible by the VAE's "
                           f"downsampling ({downsample}) times the network's ({factor})")


def generate_video(model: GeneratorModel, config: GenerateConfig, progress: bool = True) -> GenerationResult:
    """Generate ``config.out`` from ``config.image`` and ``config.audio``; see the module docstring."""
    from memo_zoo.data.media import VideoWriter

    started = time.perf_counter()
    check_output(config)  # before any work: an --out that is an input or a folder is refused at once
    fps = float(config.fps if config.fps is not None else model.fps)
    size = int(config.size if config.size is not None else model.size)
    _check_size(model, size)
    device, dtype = device_and_dtype(config)
    model.to(device)
    apply_fast_path(model, config.fast_path)
    seed = int(config.seed if config.seed is not None else model.seed)

    portrait = load_portrait(config.image, size, config.check_face)
    audio = load_audio(config.audio, config.max_seconds)
    frames = frame_count(audio.size, fps)
    emotions, schedule = clip_emotions(model, config, audio, fps, frames)
    no_emotion = no_emotion_index(model, emotion_labels(model, config))
    mux, mux_rate = mux_audio(config.audio, audio, config.max_seconds)

    # The audio tokens may hear the separated vocals (the release's inference); the emotion
    # labels above and the muxed track keep the original audio.
    speech = audio if config.vocal_separator is None else separate_vocals(audio, AUDIO_RATE, config.vocal_separator)
    guide = None
    if config.expression_guidance is not None:  # E6: loaded (and checked against the labels) before sampling
        guide = ExpressionGuide.load(config.expression_guidance, tuple(emotion_labels(model, config)), device)
    clips = ClipSampler(model, config, portrait, speech, fps, frames, emotions, no_emotion, seed, dtype, guide)
    stream: Iterator[np.ndarray] = iter(clips)
    if progress:
        stream = progress_bar(stream, desc=f"generate {Path(config.out).name}", total=frames, unit="frame")
    written = 0
    with VideoWriter(config.out, fps, width=size, height=size, audio=mux, sample_rate=mux_rate) as writer:
        for frame in stream:
            writer.write(frame)  # streamed: a clip's frames are encoded before the next clip starts
            written += 1
    if written != frames:
        raise RuntimeError(f"generated {written} frames, expected {frames}")
    seconds = time.perf_counter() - started
    return GenerationResult(path=Path(config.out), frames=frames, seconds=seconds, fps_rate=frames / max(seconds, 1e-9),
                            video_fps=fps, audio_seconds=audio.size / AUDIO_RATE,
                            clips=math.ceil(frames / config.clip_frames), emotion_schedule=schedule,
                            network_evaluations=clips.network_evaluations,
                            evaluations_per_frame=clips.evaluations_per_frame)
