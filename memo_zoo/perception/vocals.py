"""MDX-Net vocal separation with ONNX Runtime: the released code's optional step before wav2vec2 (§10).

The release separates the vocals of the driving audio with audio-separator's ``MDXSeparator`` and
``misc/vocal_separator/Kim_Vocal_2.onnx`` (``memo/utils/audio_utils.py``: ``preprocess_audio``),
then extracts the audio features of the vocals only; emotion detection still reads the original
audio. audio-separator is not a dependency (0.24.1, the release's, requires numpy < 2 and pins
samplerate and beartype); its MDX inference path is reproduced here (options:
``configs.VocalSeparatorConfig``):

1. the 16 kHz input is resampled to 44.1 kHz, a mono one doubled to stereo (the release feeds a
   16 kHz copy of the input file, which audio-separator loads with its channels at 44.1 kHz, a
   mono file as two equal channels); its peak is scaled down to 0.9 when louder, up to 0.6 when
   quieter (audio-separator 0.24.1's normalization and amplification thresholds);
2. ``demix``: ``trim = n_fft // 2`` zeros are put before the signal and zeros after it up to a
   whole number of ``gen = chunk - 2 trim`` steps plus ``trim``, where ``chunk = hop (dim_t - 1)``.
   Chunks of ``chunk`` samples start every ``(1 - overlap) chunk`` samples (the last ones
   zero-padded). Each chunk: STFT (Hann, centred, ``dim_t`` frames), keep the first ``dim_f`` bins
   as 4 channels (left real, left imaginary, right real, right imaginary), zero the lowest 3 bins,
   run the net, zero-fill the bins above ``dim_f``, iSTFT. The chunks are overlap-added with a
   Hann window of the chunk's length and divided by the summed windows; the ``trim`` head is
   dropped, the signal cut to its length and multiplied by ``compensate``;
3. the stem's peak is brought into [0.6, 0.9] the same way, its channels averaged (the release
   loads the vocals file mono) and the result resampled back to the input's rate and length.

Steps the release takes through files are done in memory: its 16-bit WAV of the stem and the
resamplers (FFmpeg's, soxr's; here scipy's polyphase filter) differ from this below the level
that matters to wav2vec2.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.perception.onnx_models import locate, open_session, static_dim
from memo_zoo.perception.configs import RELEASE_VOCAL_SEPARATOR, VocalSeparatorConfig

__all__ = ["VocalSeparator", "VocalSeparatorConfig", "separate_vocals"]

WHAT = "vocal separator (MDX-Net ONNX, the release's Kim_Vocal_2.onnx)"
SET_HINT = ("Set the separator's weights (generation: vocal_separator.weights; the vocal_separation stage: its "
            f"weights) to the .onnx file or to a MEMO release folder holding {RELEASE_VOCAL_SEPARATOR}, or leave "
            "vocal separation out to use the audio as it is")
LOW_BINS_ZEROED = 3  # audio-separator zeroes the 3 lowest bins of every spectrogram before the net


def model_file(reference: str) -> Path:
    """The ONNX file ``reference`` names (a file, a folder holding Kim_Vocal_2.onnx, a release)."""
    try:
        path = locate(reference, WHAT, RELEASE_VOCAL_SEPARATOR)
    except MissingWeightsError as error:
        raise MissingWeightsError(f"{error}. {SET_HINT}") from None
    if path.is_dir():
        inside = path / Path(RELEASE_VOCAL_SEPARATOR).name
        if not inside.is_file():
            raise MissingWeightsError(f"{WHAT}: {path} is a folder without {inside.name}. {SET_HINT}")
        path = inside
    if not path.is_file():
        raise MissingWeightsError(f"{WHAT}: no file at {path}. {SET_HINT}")
    return path


def peak_normalise(wave: np.ndarray, max_peak: float, min_peak: float = 0.0) -> np.ndarray:
    """``wave`` scaled so that its absolute peak is ``max_peak`` when louder, ``min_peak`` when
    quieter (silence stays silence)."""
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak > max_peak:
        return wave * (max_peak / peak)
    if 0 < peak < min_peak:
        return wave * (min_peak / peak)
    return wave


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``wave`` (..., n) from ``rate`` to ``target`` Hz (polyphase, Kaiser-windowed FIR)."""
    if rate == target:
        return wave
    from scipy.signal import resample_poly

    common = math.gcd(rate, target)
    return resample_poly(wave, target // common, rate // common, axis=-1).astype(np.float32)


class VocalSeparator:
    """An MDX-Net ONNX model with audio-separator's pre- and post-processing (module docstring)."""

    def __init__(self, config: VocalSeparatorConfig):
        self.config = config
        self.path = model_file(config.weights)
        self.session = open_session(self.path, WHAT, config.device, config.threads)
        inputs = self.session.get_inputs()
        shape = inputs[0].shape
        if len(shape) != 4 or static_dim(shape[1]) not in (None, 4):
            raise MemoZooError(f"{WHAT}: {self.path} takes input of shape {shape}; an MDX-Net takes "
                               "(batch, 4, frequency bins, frames)")
        self.input_name = inputs[0].name
        self.dim_f = self._dimension("dim_f", config.dim_f, static_dim(shape[2]))
        self.dim_t = self._dimension("dim_t", config.dim_t, static_dim(shape[3]))
        self.n_fft, self.hop = config.n_fft, config.hop_length
        if self.dim_f > self.n_fft // 2 + 1:
            raise MemoZooError(f"{WHAT}: {self.path} takes {self.dim_f} frequency bins, more than the "
                               f"{self.n_fft // 2 + 1} of n_fft {self.n_fft}; set vocal_separator.n_fft to the model's")
        self.trim = self.n_fft // 2
        self.chunk = self.hop * (self.dim_t - 1)
        if self.chunk <= 2 * self.trim:
            raise MemoZooError(f"{WHAT}: a chunk of {self.chunk} samples (hop_length x (dim_t - 1)) is not longer than "
                               f"n_fft {self.n_fft}")
        self.window = torch.hann_window(self.n_fft, periodic=True)

    def _dimension(self, name: str, configured: int | None, in_model: int | None) -> int:
        if configured is not None and in_model is not None and configured != in_model:
            raise MemoZooError(f"{WHAT}: vocal_separator.{name} is {configured}, but {self.path} takes {in_model}")
        value = configured if configured is not None else in_model
        if value is None:
            raise MemoZooError(f"{WHAT}: {self.path} does not fix its input's {name}; set vocal_separator.{name}")
        return value

    # ------------------------------------------------------------------ spectrogram <-> waveform

    def spectrogram(self, chunk: torch.Tensor) -> torch.Tensor:
        """(B, 2, chunk) waveforms -> (B, 4, dim_f, dim_t): per channel its real and imaginary parts."""
        batch = chunk.shape[0]
        spec = torch.stft(chunk.reshape(-1, chunk.shape[-1]), n_fft=self.n_fft, hop_length=self.hop,
                          window=self.window, center=True, return_complex=True)
        spec = torch.view_as_real(spec).permute(0, 3, 1, 2)  # (B*2, re/im, bins, frames)
        return spec.reshape(batch, 4, spec.shape[-2], spec.shape[-1])[:, :, :self.dim_f]

    def waveform(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, 4, dim_f, dim_t) -> (B, 2, chunk): the bins above ``dim_f`` zero."""
        batch, _, bins, frames = spec.shape
        full = torch.zeros(batch, 4, self.n_fft // 2 + 1, frames, dtype=spec.dtype)
        full[:, :, :bins] = spec
        pairs = full.reshape(batch * 2, 2, -1, frames).permute(0, 2, 3, 1).contiguous()
        wave = torch.istft(torch.view_as_complex(pairs), n_fft=self.n_fft, hop_length=self.hop, window=self.window,
                           center=True)
        return wave.reshape(batch, 2, -1)

    def run_net(self, spec: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(spec.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def separate_chunk(self, chunk: np.ndarray) -> np.ndarray:
        """(2, chunk) waveform -> (2, chunk) stem through the net (module docstring, step 2)."""
        spec = self.spectrogram(torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))[None])
        spec[:, :, :LOW_BINS_ZEROED] = 0
        if self.config.denoise:
            out = self.run_net(spec) * 0.5 - self.run_net(-spec) * 0.5
        else:
            out = self.run_net(spec)
        if out.shape != spec.shape:
            raise MemoZooError(f"{WHAT}: {self.path} returned shape {tuple(out.shape)} for input {tuple(spec.shape)}; "
                               "an MDX-Net returns the spectrogram's shape")
        return self.waveform(out)[0].numpy()

    # ------------------------------------------------------------------ the whole signal

    def demix(self, mix: np.ndarray) -> np.ndarray:
        """(2, n) stereo at ``sample_rate`` -> (2, n) separated stem, ``compensate`` applied."""
        length = mix.shape[-1]
        gen = self.chunk - 2 * self.trim
        pad = gen + self.trim - length % gen
        mixture = np.concatenate([np.zeros((2, self.trim), np.float32), mix.astype(np.float32),
                                  np.zeros((2, pad), np.float32)], axis=1)
        total = mixture.shape[-1]
        step = int((1 - self.config.overlap) * self.chunk)
        result = np.zeros((2, total), np.float32)
        weight = np.zeros((2, total), np.float32)
        for start in range(0, total, step):
            end = min(start + self.chunk, total)
            part = mixture[:, start:end]
            if end - start < self.chunk:
                part = np.pad(part, ((0, 0), (0, self.chunk - (end - start))))
            out = self.separate_chunk(part)[:, :end - start]
            # With overlap the chunks are cross-faded by a Hann window of the kept length.
            window = np.hanning(end - start).astype(np.float32) if self.config.overlap else np.ones(end - start,
                                                                                                     np.float32)
            result[:, start:end] += out * window
            weight[:, start:end] += window
        # Hann windows are zero at their ends: the samples covered by no window's interior are the
        # padding's first and last, which the trimming below removes.
        merged = np.divide(result, weight, out=np.zeros_like(result), where=weight > 0)
        return merged[:, self.trim:self.trim + length] * self.config.compensate

    def separate(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """``audio`` at ``rate`` -> its vocals, mono float32 at ``rate``, same length.

        ``audio`` is mono (n,), doubled to stereo as audio-separator does, or stereo (2, n): the
        release hands the separator the input's own channels, so a stereo song is separated as
        stereo and only its vocals are averaged to mono.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = np.stack([audio, audio])
        if audio.ndim != 2 or audio.shape[0] != 2 or audio.shape[1] == 0:
            raise ValueError(f"separate needs a non-empty mono (n,) or stereo (2, n) waveform, got shape {audio.shape}")
        length = audio.shape[1]
        peaks = (self.config.normalization_threshold, self.config.amplification_threshold)
        mix = peak_normalise(resample(audio, rate, self.config.sample_rate), *peaks)
        stem = peak_normalise(self.demix(mix), *peaks)
        vocals = resample(stem.mean(axis=0), self.config.sample_rate, rate)
        if vocals.size >= length:
            return np.ascontiguousarray(vocals[:length], dtype=np.float32)
        return np.pad(vocals, (0, length - vocals.size)).astype(np.float32)


def separate_vocals(audio: np.ndarray, rate: int, config: VocalSeparatorConfig) -> np.ndarray:
    """The vocals (mono, same rate and length) of mono or stereo ``audio`` at ``rate``, with the
    net of ``config``; see ``VocalSeparator.separate``."""
    with torch.no_grad():
        return VocalSeparator(config).separate(audio, rate)
