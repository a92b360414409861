"""Generation's inputs: the portrait, the driving audio, the frame count and each clip's audio (spec §6).

- The portrait is read EXIF-rotated, its short side resized and centre-cropped to ``size``; a
  portrait in which no face is detected only warns (``GenerationWarning``).
- The audio is read at 16 kHz mono (spec D3); unreadable files, empty or silent audio raise
  ``MemoZooError`` naming the file. The video gets ``ceil(audio_seconds * fps)`` frames (I1).
- Audio in which the Silero voice-activity detector finds no speech, or speech in under
  ``SPEECH_WARN_FRACTION`` of the track, only warns (``GenerationWarning``): music or noise still
  drives a video, but one whose lips have nothing to follow. When the detector cannot run here
  (no silero-vad or onnxruntime), a warning says the check was skipped; it never stops generation.
- Each clip's audio is cut with ``pad`` frames of real audio on each side (A5), exactly as the
  training samples cut it.
- The muxed track (I4) is the input at the source's sample rate (resampled only to a rate AAC
  supports), so the video's sound is the input's, not the model's 16 kHz copy.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memo_zoo.data.media import AUDIO_RATE, probe, read_audio
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.warning import GenerationWarning

if TYPE_CHECKING:
    from memo_zoo.perception.voice_activity_config import VoiceActivityConfig

SILENCE_PEAK_DB = -60.0  # a track whose loudest sample is below this carries nothing to lip-sync
# Speech under this share of the track warns. Read speech with its pauses covers well over half of
# a track (talking_world's espeak sentences: 60-90% once padded to a talking-head clip); a fifth or
# less means mostly music, noise or silence around a few words.
SPEECH_WARN_FRACTION = 0.2
# Sample rates FFmpeg's AAC encoder accepts; the muxed track uses the smallest one >= the source's.
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


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


def load_audio(path: Path, max_seconds: float | None = None, check_speech: bool = True) -> np.ndarray:
    """Mono float32 at 16 kHz (D3), cut to ``max_seconds``; ``MemoZooError`` naming the file when it
    cannot be read, has no samples or is silent. With ``check_speech``, a track with little or no
    speech warns (``speech_warning``)."""
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
    if check_speech:
        message = speech_warning(audio)
        if message is not None:
            warnings.warn(f"{path}: {message}", GenerationWarning, stacklevel=3)
    return audio


def speech_warning(audio: np.ndarray, min_fraction: float = SPEECH_WARN_FRACTION,
                   config: "VoiceActivityConfig | None" = None) -> str | None:
    """Why 16 kHz mono ``audio`` deserves a warning before it drives a video, or None.

    The Silero detector (``memo_zoo.perception.voice_activity``, default options) finds no speech,
    or speech in under ``min_fraction`` of the track. It costs about 1 s per 3 minutes of audio
    (ONNX Runtime on one CPU thread), the model loaded once per process. When the detector cannot
    load or run, the answer says so: the check is advisory and never stops generation.
    """
    from memo_zoo.perception.voice_activity import detect_speech

    try:
        activity = detect_speech(audio, config)
    except Exception as error:  # noqa: BLE001 -- an advisory check: a missing package, a broken model
        # file or a runtime error in ONNX Runtime all mean "not checked", never a failed generation.
        return (f"voice activity check unavailable ({type(error).__name__}: {error}); the audio was not "
                "checked for speech")
    seconds = activity.duration
    if not activity.segments:
        return (f"no speech found in {seconds:.2f} s of audio (Silero VAD): the lips have nothing to follow; "
                "check that this is the right track")
    if activity.speech_fraction < min_fraction:
        return (f"speech in only {activity.speech_seconds:.2f} s of {seconds:.2f} s of audio "
                f"({activity.speech_fraction:.0%} < {min_fraction:.0%}, Silero VAD): most of the video will "
                "have no speech to lip-sync to")
    return None


def mux_audio(path: Path, fallback: np.ndarray, max_seconds: float | None) -> tuple[np.ndarray, int]:
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
