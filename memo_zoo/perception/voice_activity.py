"""Voice activity: where a 16 kHz mono track holds speech, by the Silero VAD model (issue 20).

The model is the one shipped inside the installed ``silero-vad`` wheel (``silero_vad/data/``:
``silero_vad.onnx`` for ``backend: onnx``, ``silero_vad.jit`` for ``backend: jit``), or a file the
``model`` option names; nothing is downloaded. It is loaded once per process and file
(:func:`load_model`) and shared by every detector.

Silero reads 16 kHz audio in 512-sample windows (32 ms), each with 64 samples of the previous
window as context, and carries a recurrent state from window to window; its ``audio_forward``
resets that state, zero-pads the track to a whole number of windows and returns one speech
probability per window. The package's own ``get_speech_timestamps_from_probs`` (the second half of
``get_speech_timestamps``) turns those into segments: speech starts at the first window at or above
``threshold``, ends once the probability has stayed under ``neg_threshold`` for
``min_silence_seconds``, segments shorter than ``min_speech_seconds`` are left out and the rest are
padded by ``pad_seconds``. The two are called separately (rather than ``get_speech_timestamps``)
so that the per-window probabilities come back too, and the segments stay in samples: its
``return_seconds`` rounds them to 0.1 s.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memo_zoo.data.rates import AUDIO_RATE
from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.perception.voice_activity_config import VoiceActivityConfig
from memo_zoo.weights import loading_error, resolve_weights

__all__ = ["PACKAGE", "PACKAGED_FILES", "WINDOW", "SpeechSegment", "VoiceActivity", "VoiceActivityConfig",
           "VoiceActivityDetector", "detect_speech", "load_model", "packaged_model"]

PACKAGE = "silero-vad"
PACKAGED_FILES = {"onnx": "silero_vad.onnx", "jit": "silero_vad.jit"}  # in the package's silero_vad/data/
WINDOW = 512  # samples per Silero window at 16 kHz (32 ms); the model accepts no other size at this rate

_MODELS: dict[tuple[str, str], Any] = {}
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOADING = threading.Lock()


@dataclass(frozen=True)
class SpeechSegment:
    """One stretch of speech, in seconds from the start of the track."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class VoiceActivity:
    """What the detector found in one track.

    segments:      speech, in order, not overlapping, padded (``pad_seconds``).
    probabilities: Silero's speech probability of each 512-sample window (float32).
    duration:      the track's length in seconds.
    """

    segments: tuple[SpeechSegment, ...]
    probabilities: np.ndarray
    duration: float

    @property
    def speech_seconds(self) -> float:
        return float(sum(segment.seconds for segment in self.segments))

    @property
    def speech_fraction(self) -> float:
        """Share of the track inside speech segments, 0 for an empty track."""
        return self.speech_seconds / self.duration if self.duration > 0 else 0.0

    @property
    def span(self) -> SpeechSegment | None:
        """From the first segment's start to the last one's end; None without speech."""
        if not self.segments:
            return None
        return SpeechSegment(self.segments[0].start, self.segments[-1].end)


def _silero() -> Any:
    """The ``silero_vad`` package, imported without its side effect on torch.

    Its ``model`` module calls ``torch.set_num_threads(1)`` at import, which would slow every
    later torch computation of the process (generation, training) to one thread; the thread
    count is put back as it was.
    """
    try:
        import torch
    except ImportError as error:
        raise MemoZooError(f"voice activity needs torch, which the silero-vad package imports ({error})") from None
    threads = torch.get_num_threads()
    try:
        import silero_vad
        import silero_vad.utils_vad
    except ImportError as error:
        raise MemoZooError(f"voice activity needs the {PACKAGE} package, which ships the Silero VAD model "
                           f"(pip install {PACKAGE}); it cannot be imported ({error})") from None
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return silero_vad


def packaged_model(backend: str) -> Path:
    """The model file the installed silero-vad package ships for ``backend`` (onnx or jit)."""
    if backend not in PACKAGED_FILES:
        raise ValueError(f"backend must be one of {', '.join(PACKAGED_FILES)}, got {backend!r}")
    from importlib import resources

    _silero()
    name = PACKAGED_FILES[backend]
    try:
        path = Path(str(resources.files("silero_vad.data").joinpath(name)))
    except (ModuleNotFoundError, TypeError) as error:
        raise MissingWeightsError(f"Silero VAD model: the installed {PACKAGE} package has no silero_vad.data "
                                  f"folder ({error}); reinstall {PACKAGE}") from None
    if not path.is_file():
        raise MissingWeightsError(f"Silero VAD model: {path} is not there; the installed {PACKAGE} package should "
                                  f"ship {name} (reinstall {PACKAGE}, or set model: to a Silero VAD file)")
    return path


def _model_path(config: VoiceActivityConfig) -> Path:
    if config.model is None:
        return packaged_model(config.backend)
    path = resolve_weights(config.model, f"Silero VAD model (voice activity, backend {config.backend}, model)")
    if not path.is_file():
        raise MissingWeightsError(f"Silero VAD model (model): {path} is not a file")
    return path


def load_model(config: VoiceActivityConfig | None = None) -> tuple[Any, threading.Lock]:
    """The Silero model ``config`` names, loaded once per process and file, with the lock that
    guards its recurrent state (one track at a time per model)."""
    config = config or VoiceActivityConfig()
    path = _model_path(config)
    key = (config.backend, str(path.resolve()))
    with _LOADING:
        if key not in _MODELS:
            _MODELS[key] = _load(config.backend, path)
            _LOCKS[key] = threading.Lock()
        return _MODELS[key], _LOCKS[key]


def _load(backend: str, path: Path) -> Any:
    silero = _silero()
    utils = silero.utils_vad
    what = f"Silero VAD model ({backend})"
    try:
        with warnings.catch_warnings():
            # torch.jit.load's deprecation notice, and OnnxWrapper's "only 16000 Hz" note for files
            # named *16k*: neither matters here, where audio is always 16 kHz.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message="This model support only 16000 sampling rate")
            if backend == "onnx":
                return utils.OnnxWrapper(str(path), force_onnx_cpu=True)
            return utils.init_jit_model(str(path))
    except ImportError as error:
        raise MemoZooError(f"{what}: {path} needs onnxruntime (pip install onnxruntime): {error}") from None
    except Exception as error:  # onnxruntime and torch.jit raise their own, unrelated error types
        raise loading_error(what, path, error) from None


def _mono_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate != AUDIO_RATE:
        raise ValueError(f"voice activity runs on {AUDIO_RATE} Hz audio (Silero's 512-sample windows), got "
                         f"sample_rate={sample_rate}; read it with memo_zoo.data.media.read_audio(path, {AUDIO_RATE})")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"voice activity needs mono audio (samples,), got shape {audio.shape}")
    if audio.size and not np.isfinite(audio).all():
        raise ValueError("voice activity: the audio has non-finite samples")
    return audio


class VoiceActivityDetector:
    """Silero VAD with the options of ``config`` (module docstring); the model is loaded at once,
    so a missing or broken model file is reported when the detector is built."""

    def __init__(self, config: VoiceActivityConfig | None = None):
        self.config = config or VoiceActivityConfig()
        self.model, self._lock = load_model(self.config)

    def probabilities(self, audio: np.ndarray, sample_rate: int = AUDIO_RATE) -> np.ndarray:
        """Speech probability of each 512-sample window of ``audio`` (16 kHz mono), float32."""
        audio = _mono_16k(audio, sample_rate)
        if audio.size == 0:
            return np.zeros(0, np.float32)
        import torch

        with self._lock, torch.inference_mode():
            # audio_forward resets the recurrent state first, so tracks never leak into each other.
            out = self.model.audio_forward(torch.from_numpy(audio)[None], AUDIO_RATE)
        return out.reshape(-1).numpy().astype(np.float32, copy=False)

    def segments(self, probabilities: np.ndarray, samples: int) -> tuple[SpeechSegment, ...]:
        """Speech segments of a ``samples``-long track from its window probabilities (silero's rules)."""
        config = self.config
        utils = _silero().utils_vad
        if not hasattr(utils, "get_speech_timestamps_from_probs"):
            raise MemoZooError(f"the installed {PACKAGE} has no get_speech_timestamps_from_probs; voice activity "
                               f"needs a release that has it (6.2.3 does: pip install -U {PACKAGE})")
        found = utils.get_speech_timestamps_from_probs(
            [float(p) for p in probabilities], sampling_rate=AUDIO_RATE, threshold=config.threshold,
            neg_threshold=config.neg_threshold, min_speech_duration_ms=config.min_speech_seconds * 1000,
            min_silence_duration_ms=config.min_silence_seconds * 1000, speech_pad_ms=config.pad_seconds * 1000,
            audio_length_samples=int(samples))
        return tuple(SpeechSegment(item["start"] / AUDIO_RATE, item["end"] / AUDIO_RATE) for item in found)

    def detect(self, audio: np.ndarray, sample_rate: int = AUDIO_RATE) -> VoiceActivity:
        """Speech segments and window probabilities of ``audio`` (16 kHz mono float in [-1, 1])."""
        audio = _mono_16k(audio, sample_rate)
        probabilities = self.probabilities(audio)
        segments = self.segments(probabilities, audio.size) if audio.size else ()
        return VoiceActivity(segments, probabilities, audio.size / AUDIO_RATE)


def detect_speech(audio: np.ndarray, config: VoiceActivityConfig | None = None,
                  sample_rate: int = AUDIO_RATE) -> VoiceActivity:
    """``VoiceActivityDetector(config).detect(audio)``; the model is loaded once per process."""
    return VoiceActivityDetector(config).detect(audio, sample_rate)
