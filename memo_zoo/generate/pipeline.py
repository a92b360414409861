"""Talking-video generation of any length, clip by clip, streamed to an MP4 (spec §6 I1-I4, T6, E5, §10).

``load_generator_model(checkpoint, recipe, registry)`` builds the recipe's parts and loads trained
weights; ``generate_video(model, config)`` runs them. Per video (B = 1):

1. The portrait is read (short side resized, centre crop to ``size``; a portrait with no face
   detected only warns) and the audio read at 16 kHz mono (spec D3). Unreadable files, empty
   or silent audio raise ``MemoZooError`` naming the file. The video gets
   ``ceil(audio_seconds * fps)`` frames, in ``ceil(frames / clip_frames)`` clips (I1).
2. Emotion: one label per clip, the most frequent of its frames' labels (E5), the frame labels
   coming from the recipe's ``emotion_detector`` (3 s window per frame), from a fixed label, or
   from a schedule (E4 override).
3. Once per video: the image embedding -> image tokens (A4), the reference latent through the VAE
   and the Reference Net's states of it (A2).
4. The temporal context of the first clip: the reference latent repeated ``motion_frames`` times,
   folded in by ``MemoNet.motion_state`` (spec §10).
5. Per clip: audio tokens from the clip's audio with ``pad_frames`` frames of real audio on each
   side (A5, cut exactly as the training samples cut it); noise from a generator seeded by
   (seed, clip); the sampler's ``solve`` integrates the ODE from t = 1 to 0 (I3) with a velocity
   that applies classifier-free guidance (I2) on ONE batched forward over every guidance level
   (``GuidanceConfig``); the clean latents are decoded by the VAE and the clip's frames streamed
   to the writer (the last clip truncated), so memory does not grow with the audio's length.
6. After each clip but the last, the temporal context is updated ONCE from that clip's clean
   latents (T6); every denoising step of the next clip reads that same state.

Classifier-free guidance (I2, §10): the unconditional level has a zero face embedding (projected
to tokens as in training), zero audio tokens, the "no emotion" index and reference attention off
(``reference_mask`` False). The temporal context of each level is built with that level's image
tokens, as training builds it for a sample whose reference was dropped.

The output is H.264 with the input audio muxed in as AAC (I4) at the source's sample rate
(resampled only to a rate AAC supports), so the sound is the input's, not the model's 16 kHz copy.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor, nn

from memo_zoo.data.media import AUDIO_RATE, probe, read_audio
from memo_zoo.emotion import LABEL_SETS
from memo_zoo.emotion.segments import label_audio_file, segment_labels
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.config import NO_EMOTION, GenerateConfig, GuidanceConfig, check_output
from memo_zoo.model.checkpoint_files import (ENCODERS_FILE, MODEL_DIR, STATE_FILE, latest_checkpoint,
                                             load_encoder_weights)
from memo_zoo.model.compatibility import check_network_matches
from memo_zoo.model.memo_net import CONFIG_FILE, MemoNet, build_memo_net, component_config
from memo_zoo.progress import progress as progress_bar
from memo_zoo.settings import get_settings

SILENCE_PEAK_DB = -60.0  # a track whose loudest sample is below this carries nothing to lip-sync
DECODE_CHUNK = 8  # frames per VAE decode call: bounds activation memory at 512 px
# Sample rates FFmpeg's AAC encoder accepts; the muxed track uses the smallest one >= the source's.
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


class GenerationWarning(UserWarning):
    """Input that generation can use but that deserves a look (no face found, no emotion detector)."""


# ---------------------------------------------------------------------------------------- model


@dataclass
class GeneratorModel:
    """The parts generation runs, with the defaults the recipe implies.

    ``fps``/``size``/``audio_window``/``label_set`` come from a training recipe's ``task.samples``
    when there is one (the conditions the network was trained under), else from the preset.
    """

    net: MemoNet
    vae: Any
    image_encoder: Any
    audio_encoder: Any | None
    scheduler: BaseModel
    registry: Any
    emotion_detector: Any | None = None
    fps: float = 25.0
    size: int = 64
    audio_window: int = 2
    label_set: str | None = None
    seed: int = 0
    checkpoint: Path | None = None
    name: str = "memo"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def emotion_classes(self) -> int | None:
        """Emotion classes the network's audio module embeds, None when it ignores emotion."""
        fusion = self.net.audio_fusion_config
        if not getattr(fusion, "emotion_conditioning", False):
            return None
        return getattr(fusion, "num_emotion_classes", None)

    def modules(self) -> list[nn.Module]:
        parts = (self.net, self.vae, self.image_encoder, self.audio_encoder)
        return [part for part in parts if isinstance(part, nn.Module)]

    def to(self, device: torch.device) -> "GeneratorModel":
        for module in self.modules():
            module.to(device).eval().requires_grad_(False)
        self.device = device
        return self


def resolve_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """(MemoNet folder, encoders file or None) of a checkpoint path in any of the accepted layouts:

    - a training checkpoint ``checkpoint-N/`` (``trainer.json``, ``model/``, ``encoders.safetensors``),
      or its ``model/`` folder;
    - a training ``out_dir`` holding ``checkpoint-N/`` folders: the newest;
    - a ``MemoNet.save_pretrained`` folder, with an optional ``encoders.safetensors`` beside the
      network files.
    """
    path = Path(path)
    if not path.exists():
        raise MemoZooError(f"checkpoint {path}: not found")
    if not path.is_dir():
        raise MemoZooError(f"checkpoint {path}: expected a folder (a training checkpoint, a training out_dir or "
                           "a MemoNet folder with memo_net.json), got a file")
    if (path / CONFIG_FILE).is_file() and (path.parent / STATE_FILE).is_file():
        path = path.parent  # the model/ folder of a training checkpoint: take its encoders too
    if not (path / STATE_FILE).is_file() and not (path / CONFIG_FILE).is_file():
        newest = latest_checkpoint(path)
        if newest is not None:
            path = newest
    if (path / STATE_FILE).is_file():
        encoders = path / ENCODERS_FILE
        return path / MODEL_DIR, encoders if encoders.is_file() else None
    if (path / CONFIG_FILE).is_file():
        encoders = path / ENCODERS_FILE
        return path, encoders if encoders.is_file() else None
    raise MemoZooError(f"checkpoint {path}: not a training checkpoint ({STATE_FILE} + {MODEL_DIR}/), a training "
                       f"out_dir (checkpoint-N/ folders) or a MemoNet folder ({CONFIG_FILE})")


def _training_samples(recipe: BaseModel) -> Any | None:
    """A training recipe's ``task.samples`` (fps, size, audio_window, label_set), or None."""
    return getattr(recipe.task, "samples", None)


def load_generator_model(checkpoint_dir: Path | str | None, recipe: BaseModel, registry: Any) -> GeneratorModel:
    """The recipe's network, autoencoder, encoders, sampler and emotion detector, with the weights
    of ``checkpoint_dir`` (any layout of ``resolve_checkpoint``; None = random weights, warned).

    The recipe's ``model.network``/``temporal``/``audio_fusion`` are the architecture; a
    checkpoint that does not fit it raises ``MemoZooError`` naming the differing config fields
    and the mismatched parameters. A recipe without ``temporal``/``audio_fusion`` takes the
    checkpoint's.
    """
    model = recipe.model
    for part in ("vae", "image_encoder"):
        if getattr(model, part) is None:
            raise MemoZooError(f"generation needs model.{part} in the recipe")
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir)
    encoders_file = None
    if checkpoint is not None:
        net_dir, encoders_file = resolve_checkpoint(checkpoint)
        # Before loading: weights of another architecture can have the very same parameter names
        # (a self_attention recipe over linear_memory weights, another gamma) and load silently.
        check_network_matches(net_dir, model, f"checkpoint {checkpoint}")
        try:
            net = MemoNet.from_pretrained(net_dir, registry, network=model.network, temporal=model.temporal,
                                          audio_fusion=model.audio_fusion)
        except MemoZooError as error:
            raise MemoZooError(f"checkpoint {checkpoint} does not fit the recipe's model:\n{error}") from None
    else:
        for part in ("temporal", "audio_fusion"):
            if getattr(model, part) is None:
                raise MemoZooError(f"generation without a checkpoint needs model.{part} in the recipe")
        warnings.warn("no checkpoint given: the network has random weights (a smoke run, not a talking video)",
                      GenerationWarning, stacklevel=2)
        net = build_memo_net(model.network, model.temporal, model.audio_fusion, registry)
    vae = registry.build("vae", model.vae)
    image_encoder = registry.build("image_encoder", model.image_encoder)
    audio_encoder = None if model.audio_encoder is None else registry.build("audio_encoder", model.audio_encoder)
    if audio_encoder is None:
        warnings.warn("the recipe has no model.audio_encoder: every clip gets zero audio tokens (no lip sync)",
                      GenerationWarning, stacklevel=2)
    if encoders_file is not None:
        loaded = load_encoder_weights(encoders_file, {"image_encoder": image_encoder, "audio_encoder": audio_encoder})
        for part, encoder in (("image_encoder", image_encoder), ("audio_encoder", audio_encoder)):
            if isinstance(encoder, nn.Module) and any(p.requires_grad for p in encoder.parameters()) \
                    and not loaded.get(part):
                warnings.warn(f"{encoders_file} has no weights for the trainable model.{part}: it keeps its random "
                              "initialisation", GenerationWarning, stacklevel=2)
    elif checkpoint is not None:
        for part, encoder in (("image_encoder", image_encoder), ("audio_encoder", audio_encoder)):
            if isinstance(encoder, nn.Module) and any(p.requires_grad for p in encoder.parameters()):
                warnings.warn(f"checkpoint {checkpoint} has no {ENCODERS_FILE}: the trainable model.{part} keeps its "
                              "random initialisation", GenerationWarning, stacklevel=2)
    _check_parts(net, vae, image_encoder, audio_encoder)
    scheduler = recipe.scheduler or component_config(registry, "scheduler", {"kind": "flow_euler"})
    detector = None if recipe.emotion_detector is None else registry.build("emotion_detector",
                                                                           recipe.emotion_detector)
    samples = _training_samples(recipe)
    sd15 = net.network_config.preset == "sd15"
    encoder_window = getattr(getattr(audio_encoder, "config", None), "window", None)
    return GeneratorModel(
        net=net, vae=vae, image_encoder=image_encoder, audio_encoder=audio_encoder, scheduler=scheduler,
        registry=registry, emotion_detector=detector,
        fps=float(samples.fps) if samples is not None else (30.0 if sd15 else 25.0),
        size=int(samples.size) if samples is not None else (512 if sd15 else 64),
        # pad_frames: as many real neighbouring frames as training handed the encoder (A5).
        audio_window=int(samples.audio_window) if samples is not None else int(encoder_window or 2),
        label_set=getattr(samples, "label_set", None), seed=int(recipe.seed), checkpoint=checkpoint,
        name=str(recipe.name))


def _check_parts(net: MemoNet, vae: Any, image_encoder: Any, audio_encoder: Any | None) -> None:
    cfg = net.network_config
    problems = []
    if getattr(vae, "latent_channels", None) != cfg.latent_channels:
        problems.append(f"model.vae gives {getattr(vae, 'latent_channels', None)} latent channels, the network "
                        f"reads {cfg.latent_channels} (model.network.latent_channels)")
    if getattr(image_encoder, "embed_dim", None) != cfg.image_embed_dim:
        problems.append(f"model.image_encoder gives {getattr(image_encoder, 'embed_dim', None)}-d embeddings, the "
                        f"network reads {cfg.image_embed_dim} (model.network.image_embed_dim)")
    if audio_encoder is not None and (audio_encoder.token_count, audio_encoder.token_dim) != (cfg.audio_tokens,
                                                                                           cfg.audio_dim):
        problems.append(f"model.audio_encoder gives {audio_encoder.token_count} tokens of {audio_encoder.token_dim}, "
                        f"the network reads {cfg.audio_tokens} of {cfg.audio_dim}")
    if problems:
        raise MemoZooError("the recipe's model parts do not fit together:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------------------------------- inputs


def load_portrait(path: Path, size: int, check_face: bool = True) -> np.ndarray:
    """The portrait as (size, size, 3) uint8 RGB: EXIF-rotated, short side resized, centre crop."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MemoZooError(f"{path}: image not found" if not path.exists() else f"{path}: not a regular file")
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise MemoZooError(f"{path}: cannot be read as an image ({error})") from None
    if check_face and _face_found(np.asarray(image)) is False:
        warnings.warn(f"{path}: no face found in the portrait; generating on the whole image", GenerationWarning,
                      stacklevel=3)
    fitted = ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return np.asarray(fitted, dtype=np.uint8).copy()


def _face_found(image: np.ndarray) -> bool | None:
    """Whether the portrait detector (dlib's HOG, else LBP) finds a face; None when none can run here."""
    from memo_zoo.perception.faces import find_faces, portrait_detector

    try:
        detector = portrait_detector()
    except MemoZooError:
        return None  # no detector available (neither dlib nor scikit-image): the check is advisory
    return len(find_faces(detector, image)) > 0


def load_audio(path: Path, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 at 16 kHz (D3), cut to ``max_seconds``; ``MemoZooError`` naming the file when it
    cannot be read, has no samples or is silent."""
    audio = read_audio(path, AUDIO_RATE)  # MediaError (a MemoZooError) names the file and the problem
    if max_seconds is not None:
        audio = audio[:max(1, int(round(max_seconds * AUDIO_RATE)))]
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if audio.size == 0:
        raise MemoZooError(f"{path}: the audio has no samples")
    if not math.isfinite(peak):
        raise MemoZooError(f"{path}: the audio has non-finite samples")
    if peak <= 10 ** (SILENCE_PEAK_DB / 20):
        level = "digital silence" if peak == 0 else f"peak {20 * math.log10(peak):.0f} dBFS"
        raise MemoZooError(f"{path}: the audio is silent ({level}): there is nothing to lip-sync; check that this "
                           "is the right, unmuted track")
    return audio


def _mux_audio(path: Path, fallback: np.ndarray, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """The track to mux (I4): the input at its own rate (mono), or the 16 kHz copy if that fails."""
    try:
        rate = probe(path).audio_rate or AUDIO_RATE
    except MemoZooError:
        return fallback, AUDIO_RATE
    rate = next((r for r in AAC_RATES if r >= rate), AAC_RATES[-1])
    if rate == AUDIO_RATE:
        return fallback, AUDIO_RATE
    audio = read_audio(path, rate)
    if max_seconds is not None:
        audio = audio[:max(1, int(round(max_seconds * rate)))]
    return audio, rate


def frame_count(samples: int, fps: float) -> int:
    """ceil(audio seconds x fps), exact for rational rates (29.97 = 30000/1001)."""
    rate = Fraction(fps).limit_denominator(1001)
    return max(1, math.ceil(Fraction(samples) * rate / AUDIO_RATE))


def clip_waveform(audio: np.ndarray, first: int, count: int, pad: int, fps: float) -> np.ndarray:
    """The waveform of frames ``first - pad .. first + count + pad - 1`` (A5), zero outside the track.

    Cut exactly as ``memo_zoo.data.samples`` cuts training audio: frame k's audio is the
    ``round(16000 / fps)`` samples from ``round(k 16000 / fps)``, frames concatenated in order.
    """
    per_frame = max(1, round(AUDIO_RATE / fps))
    frames = np.arange(first - pad, first + count + pad)
    index = np.rint(frames * (AUDIO_RATE / fps)).astype(np.int64)[:, None] + np.arange(per_frame)
    out = np.zeros(index.shape, dtype=np.float32)
    valid = (index >= 0) & (index < audio.shape[0])
    out[valid] = audio[index[valid]]
    return out.reshape(-1)


# ---------------------------------------------------------------------------------------- emotion


def emotion_labels(model: GeneratorModel, config: GenerateConfig) -> tuple[str, ...]:
    """Names of the emotion classes, index order (E4, §10); see ``GenerateConfig.label_set``."""
    classes = model.emotion_classes
    if config.label_set is not None:
        labels = LABEL_SETS[config.label_set]
    elif model.emotion_detector is not None:
        labels = tuple(model.emotion_detector.labels)
    elif model.label_set is not None:
        labels = LABEL_SETS[model.label_set]
    else:
        by_size = [names for names in LABEL_SETS.values() if len(names) == classes]
        labels = by_size[0] if by_size else LABEL_SETS["paper"]
    if classes is not None and len(labels) != classes:
        raise MemoZooError(f"the emotion labels ({len(labels)}: {', '.join(labels)}) do not match the network's "
                           f"{classes} emotion classes (model.audio_fusion.num_emotion_classes); set label_set or "
                           "use a detector with that many classes")
    detector = model.emotion_detector
    if detector is not None and tuple(detector.labels) != labels:
        raise MemoZooError(f"the emotion_detector's labels ({', '.join(detector.labels)}) differ from the label set "
                           f"used for generation ({', '.join(labels)})")
    return labels


def no_emotion_index(model: GeneratorModel, labels: tuple[str, ...]) -> int:
    """Index of the "no emotion" embedding (E3): the last row of the network's emotion table."""
    return model.emotion_classes if model.emotion_classes is not None else len(labels)


def _detected_frame_labels(model: GeneratorModel, audio_path: Path, audio: np.ndarray, fps: float,
                           frames: int, no_emotion: int) -> Tensor:
    detector = model.emotion_detector
    if detector is None:
        warnings.warn("the recipe has no emotion_detector and no emotion was given: generating with the "
                      "'no emotion' embedding (E3)", GenerationWarning, stacklevel=4)
        return torch.full((frames,), no_emotion, dtype=torch.long)
    # Cached per file and detector (expensive backbones), 3 s window per frame (E5).
    return label_audio_file(detector, audio_path, fps, frames).long().reshape(-1)


def clip_emotions(model: GeneratorModel, config: GenerateConfig, audio: np.ndarray, fps: float,
                  frames: int) -> tuple[Tensor, list[dict[str, Any]]]:
    """One emotion index per clip (E5) and a JSON-ready description of the schedule used."""
    labels = emotion_labels(model, config)
    no_emotion = no_emotion_index(model, labels)

    def index(name: str) -> int:
        if name == NO_EMOTION:
            return no_emotion
        if name not in labels:
            raise MemoZooError(f"unknown emotion {name!r}; the labels are: {', '.join(labels)} (or '{NO_EMOTION}')")
        return labels.index(name)

    emotion = config.emotion
    if isinstance(emotion, str):
        per_frame, source = torch.full((frames,), index(emotion), dtype=torch.long), "override"
    elif emotion is None:
        per_frame = _detected_frame_labels(model, config.audio, audio, fps, frames, no_emotion)
        source = "detected" if model.emotion_detector is not None else "none"
    else:
        per_frame = torch.full((frames,), -1, dtype=torch.long)
        middle = (torch.arange(frames, dtype=torch.float64) + 0.5) / fps  # a frame belongs where it is shown
        for segment in emotion:
            inside = (middle >= segment.start_s) & (middle < segment.end_s)
            per_frame[inside] = index(segment.label)
        uncovered = per_frame < 0
        if bool(uncovered.any()):
            detected = _detected_frame_labels(model, config.audio, audio, fps, frames, no_emotion)
            per_frame[uncovered] = detected[uncovered]
        source = "schedule"
    clip = config.clip_frames
    per_clip = segment_labels(per_frame, clip)
    names = list(labels) + [NO_EMOTION]
    schedule = [{"clip": k, "start_s": k * clip / fps, "end_s": min((k + 1) * clip, frames) / fps,
                 "label": names[int(label)] if 0 <= int(label) < len(names) else str(int(label)), "source": source}
                for k, label in enumerate(per_clip.tolist())]
    return per_clip, schedule


# ---------------------------------------------------------------------------------------- guidance


@dataclass(frozen=True)
class Level:
    """Which conditions one guidance branch keeps (spec §10's unconditional branch drops all)."""

    reference: bool
    audio: bool
    emotion: bool


def guidance_levels(cfg: GuidanceConfig, has_audio: bool = True) -> list[tuple[Level, float]]:
    """The branches to evaluate and the weight of each in the guided velocity (``GuidanceConfig``).

    ``v = sum_l w_l v_l`` with the weights of the telescoped chain u -> r -> ra -> c; levels that
    coincide (no audio encoder: r = ra) are merged and zero weights dropped. The weights sum to 1.
    """
    s_ref, s_audio, s_emotion = cfg.scales()
    chain = [(Level(False, False, False), 1.0 - s_ref), (Level(True, False, False), s_ref - s_audio),
             (Level(True, True, False), s_audio - s_emotion), (Level(True, True, True), s_emotion)]
    merged: dict[Level, float] = {}
    for level, weight in chain:
        if not has_audio:
            level = Level(level.reference, False, level.emotion)
        merged[level] = merged.get(level, 0.0) + weight
    return [(level, weight) for level, weight in merged.items() if weight != 0.0]


# ---------------------------------------------------------------------------------------- generation


@dataclass
class GenerationResult:
    """What ``generate_video`` made: the file, its frames, the wall time and the speed.

    ``seconds`` is wall-clock generation time; ``fps_rate`` generated frames per wall second.
    """

    path: Path
    frames: int
    seconds: float
    fps_rate: float
    video_fps: float = 0.0
    audio_seconds: float = 0.0
    clips: int = 0
    emotion_schedule: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(1, self.frames)


def resolve_device(config: GenerateConfig) -> tuple[torch.device, torch.dtype]:
    """Device (config, else $MEMO_ZOO_DEVICE) and autocast dtype (bf16 on CUDA, fp32 on CPU)."""
    name = config.device or get_settings().device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MemoZooError(f"device {name!r} was asked for but CUDA is not available here (use device: cpu)")
    device = torch.device(name)
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if config.dtype is not None:
        return device, dtypes[config.dtype]
    return device, torch.bfloat16 if device.type == "cuda" else torch.float32


def clip_seed(seed: int, clip: int) -> int:
    """A well-mixed seed per (seed, clip): a clip's noise does not depend on how many clips came before."""
    return int(np.random.SeedSequence([int(seed), int(clip)]).generate_state(2, dtype=np.uint64)[0] >> 1)


def _to_uint8(frames: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    pixels = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _check_size(model: GeneratorModel, size: int) -> None:
    downsample = int(getattr(model.vae, "downsample", 1))
    factor = 2 ** (len(model.net.network_config.block_out_channels) - 1)
    if size % 2 or size % downsample or (size // downsample) % factor:
        raise MemoZooError(f"size {size} px does not fit: frames must have an even side (H.264) divisible by the VAE's "
                           f"downsampling ({downsample}) times the network's ({factor})")


class _ClipGenerator:
    """The per-clip loop of the module docstring (steps 3-6), as a generator of frames."""

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


def generate_video(model: GeneratorModel, config: GenerateConfig, progress: bool = True) -> GenerationResult:
    """Generate ``config.out`` from ``config.image`` and ``config.audio``; see the module docstring."""
    from memo_zoo.data.media import VideoWriter

    started = time.perf_counter()
    check_output(config)  # before any work: an --out that is an input or a folder is refused at once
    fps = float(config.fps if config.fps is not None else model.fps)
    size = int(config.size if config.size is not None else model.size)
    _check_size(model, size)
    if config.steps is not None:
        model = _with_steps(model, config.steps)
    device, dtype = resolve_device(config)
    model.to(device)
    seed = int(config.seed if config.seed is not None else model.seed)

    portrait = load_portrait(config.image, size, config.check_face)
    audio = load_audio(config.audio, config.max_seconds)
    frames = frame_count(audio.size, fps)
    emotions, schedule = clip_emotions(model, config, audio, fps, frames)
    no_emotion = no_emotion_index(model, emotion_labels(model, config))
    mux, mux_rate = _mux_audio(config.audio, audio, config.max_seconds)

    clips = _ClipGenerator(model, config, portrait, audio, fps, frames, emotions, no_emotion, seed, dtype)
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
                            clips=math.ceil(frames / config.clip_frames), emotion_schedule=schedule)


def _with_steps(model: GeneratorModel, steps: int) -> GeneratorModel:
    """A shallow copy of ``model`` whose sampler takes ``steps`` steps (the recipe's is unchanged)."""
    from dataclasses import replace

    scheduler = model.scheduler
    if "steps" not in type(scheduler).model_fields:
        raise MemoZooError(f"scheduler {getattr(scheduler, 'kind', type(scheduler).__name__)} has no `steps` "
                           "option to override")
    return replace(model, scheduler=scheduler.model_copy(update={"steps": steps}))
