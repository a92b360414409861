"""``log_mel``: a small trainable audio encoder for the CPU default (spec A5 without wav2vec2).

Waveform (16 kHz) -> log-mel spectrogram (torch STFT, 25 ms Hann window, 10 ms hop, our own HTK
mel filterbank) -> ``sub_frames`` spectra per video frame, interpolated at evenly spaced times
inside the frame (so any fps works and no 10 ms detail is averaged away) -> windows of +-``window``
video frames (A5) -> LayerNorm + MLP -> ``token_count`` tokens of ``token_dim`` per frame.

Everything is local in time (no per-utterance normalisation), so a frame's tokens depend only
on the audio of its window, plus the STFT's half window (200 samples) at the window's edges.
Every parameter is trainable; the trainer optimises it with the network.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from memo_zoo_plugins.audio_encoder.windows import (
    SAMPLE_RATE, TokenProjector, check_encode_args, frame_windows, resample_to_frames,
)
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.audio_encoder.configs import LogMelConfig

N_FFT = 400  # 25 ms at 16 kHz: the usual speech analysis window
HOP = 160  # 10 ms
MEL_FLOOR = 1e-6  # added before the log: keeps silence finite and its gradient bounded


def mel_filterbank(n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 0.0, f_max: float | None = None) -> Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters, equally spaced on the HTK mel scale."""
    f_max = sample_rate / 2 if f_max is None else f_max

    def to_mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (10 ** (mels / 2595.0) - 1.0)  # n_mels + 2 band edges in Hz
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)[:, None]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()


class LogMelAudioEncoder(nn.Module):
    def __init__(self, config: LogMelConfig):
        super().__init__()
        self.config = config
        self.token_count, self.token_dim = config.token_count, config.token_dim
        # Derived from the config, so kept out of the state dict (persistent=False).
        self.register_buffer("stft_window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(config.n_mels), persistent=False)
        in_features = (2 * config.window + 1) * config.sub_frames * config.n_mels
        # LayerNorm over a frame's own window (not the utterance) keeps the receptive field local.
        self.input_norm = nn.LayerNorm(in_features)
        self.projector = TokenProjector(in_features, config.hidden, config.token_count, config.token_dim)

    def log_mel(self, waveform: Tensor) -> Tensor:
        """(B, S) -> (B, 1 + S // 160, n_mels); spectrum k is centred on sample 160 k."""
        # The spectrum is computed in float32 even when the module runs in bf16/fp16: the power
        # spectrum spans many decades that half precision would flush to zero or overflow.
        # Zero padding (not reflection) at the ends: valid for clips shorter than half a window.
        spec = torch.stft(waveform.float(), N_FFT, HOP, window=self.stft_window.float(), center=True,
                          pad_mode="constant", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (B, freq, frames)
        mel = torch.einsum("bft,fm->btm", power, self.filterbank.float())
        return torch.log(mel + MEL_FLOOR)

    def encode(self, waveform: Tensor, num_frames: int, fps: float, pad_frames: int = 0) -> Tensor:
        """(B, S) 16 kHz covering num_frames + 2 pad_frames frames -> (B, num_frames, T, A)."""
        check_encode_args(waveform, num_frames, fps, pad_frames)
        cfg = self.config
        total = num_frames + 2 * pad_frames
        mel = self.log_mel(waveform)
        per_frame = resample_to_frames(mel, rate=SAMPLE_RATE / HOP, offset=0.0, fps=fps, num_frames=total,
                                       sub_frames=cfg.sub_frames)
        per_frame = per_frame.view(waveform.shape[0], total, cfg.sub_frames, cfg.n_mels)
        windows = frame_windows(per_frame, cfg.window, pad_frames, num_frames, cfg.padding)
        b = waveform.shape[0]
        flat = self.input_norm(windows.reshape(b, num_frames, -1).to(self.input_norm.weight.dtype))
        return self.projector(flat)


def build(config: LogMelConfig) -> LogMelAudioEncoder:
    return LogMelAudioEncoder(config)
