"""SyncNet and its evaluation of one video (spec §8, Table 1; LSE-C / LSE-D): shared by the ``sync``
metric (memo_zoo_eval.metrics.sync) and the ``lip_sync_filter`` preprocessing stage.

The network is SyncNet as released with the lip-sync literature's reference evaluation
(``syncnet_v2.model``; Chung & Zisserman, "Out of time", 2016), re-implemented here layer for
layer so that its state dict loads as it is. Layout and state-dict keys (``Sequential`` indices;
BatchNorm keys ``weight, bias, running_mean, running_var``, ``num_batches_tracked`` optional):

audio ``netcnnaud`` on MFCC windows (N, 1, 13, 20):
  0 Conv2d(1, 64, 3, pad 1)  1 BN  2 ReLU  3 MaxPool(1, 1)
  4 Conv2d(64, 192, 3, pad 1)  5 BN  6 ReLU  7 MaxPool(3, stride (1, 2))
  8 Conv2d(192, 384, 3, pad 1)  9 BN  10 ReLU
  11 Conv2d(384, 256, 3, pad 1)  12 BN  13 ReLU
  14 Conv2d(256, 256, 3, pad 1)  15 BN  16 ReLU  17 MaxPool(3, stride 2)
  18 Conv2d(256, 512, (5, 4))  19 BN  20 ReLU                       -> 512 x 1 x 1
video ``netcnnlip`` on 5 stacked colour frames (N, 3, 5, 224, 224):
  0 Conv3d(3, 96, (5, 7, 7), stride (1, 2, 2))  1 BN3d  2 ReLU  3 MaxPool3d((1, 3, 3), (1, 2, 2))
  4 Conv3d(96, 256, (1, 5, 5), stride (1, 2, 2), pad (0, 1, 1))  5 BN3d  6 ReLU
  7 MaxPool3d((1, 3, 3), (1, 2, 2), pad (0, 1, 1))
  8 / 11 / 14 Conv3d(256, 256, (1, 3, 3), pad (0, 1, 1)), each + BN3d + ReLU; 17 MaxPool3d((1, 3, 3), (1, 2, 2))
  18 Conv3d(256, 512, (1, 6, 6))  19 BN3d  20 ReLU                  -> 512 x 1 x 1 x 1
heads ``netfcaud`` / ``netfclip``: 0 Linear(512, 512)  1 BatchNorm1d  2 ReLU  3 Linear(512, 1024)

Inputs as the reference evaluation prepares them:
- video: the face crop resized to 224x224, channels in OpenCV's BGR order (``bgr``), values in
  [0, 255] without normalisation; the video at 25 fps (other rates are resampled to 25 fps by
  taking the frame shown at each time). Frames i..i+4 make window i.
- audio: 16 kHz mono scaled to int16 range (the reference reads the WAV as int16), MFCCs with
  python_speech_features' defaults (re-implemented in ``mfcc``: 25 ms rectangular frames every
  10 ms, pre-emphasis 0.97, 512-point FFT, 26 mel filters, 13 coefficients, lifter 22, c0
  replaced by log frame energy); window i is MFCC columns 4i..4i+19 (0.2 s).
- windows: i = 0 .. min(T, floor(samples / 640)) - 6, i.e. both streams must cover window i.

Embeddings of each window go to ``memo_zoo.perception.sync_offsets``: distances over shifts -15..15,
Sync-D = the minimum of the mean distances, Sync-C = median minus minimum, the AV offset; per
video, and the run's figures are their means (spec §8). The face crop (``SyncNetOptions.crop_mode``):
- ``tracked`` (the default with a face detector): as the reference pipeline, the detector runs on
  every 25 fps frame, the longest face track is kept and every frame gets its own crop, with the
  track's stretch of the audio (``memo_zoo.perception.face_track``; bit-exact with the reference on
  its golden data). A video without a kept track falls back to the fixed square.
- ``fixed``: one square per video (``memo_zoo.perception.face_boxes``): the centre square without a
  detector; with one, the median box in the reference's crop geometry (1.4 x the box's larger side,
  centred 0.4 x half-side below the box centre), resized with antialiasing.

The ``lip_sync_filter`` preprocessing stage's ``scorer: syncnet`` is this network
(``load_sync_scorer``), so both judge lip sync alike; they live in the core because both use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import scipy.fft
import torch
from torch import nn

from memo_zoo.data.media import AUDIO_RATE
from memo_zoo.devices import resolve_device
from memo_zoo.errors import MemoZooError
from memo_zoo.perception.face_boxes import FaceLocator, crop_resize
from memo_zoo.perception.face_track import CROP_SIZE, FaceTrack, crop_face, crop_geometry, main_face_track
from memo_zoo.perception.faces import FaceDetector, build_detector
from memo_zoo.perception.sync_offsets import OffsetSearch, search_offsets
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.perception.configs import SyncNetOptions

WHAT = "SyncNet weights (syncnet_v2.model: state dict of the reference SyncNet)"
SYNCNET_FPS = 25.0
WINDOW_FRAMES = 5          # video frames per window (0.2 s at 25 fps)
MFCC_PER_FRAME = 4         # 100 MFCC frames per second / 25 video frames per second
MFCC_WINDOW = 20           # MFCC columns per window (0.2 s)
CROP_SCALE, CROP_SHIFT = 1.4, 0.4  # reference crop: half-side bs -> bs * (1 + 0.4), centre 0.4 bs lower


# ---- the network ---------------------------------------------------------------------------------

def _conv_bn_relu(conv: nn.Module, channels: int, bn: type[nn.Module]) -> list[nn.Module]:
    return [conv, bn(channels), nn.ReLU(inplace=True)]


class SyncNet(nn.Module):
    """SyncNet's two streams (module docstring); ``embed_dim`` is 1024 in the released weights."""

    def __init__(self, embed_dim: int = 1024):
        super().__init__()
        c2, c3 = nn.Conv2d, nn.Conv3d
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu(c2(1, 64, 3, padding=1), 64, nn.BatchNorm2d), nn.MaxPool2d(1, 1),
            *_conv_bn_relu(c2(64, 192, 3, padding=1), 192, nn.BatchNorm2d), nn.MaxPool2d(3, stride=(1, 2)),
            *_conv_bn_relu(c2(192, 384, 3, padding=1), 384, nn.BatchNorm2d),
            *_conv_bn_relu(c2(384, 256, 3, padding=1), 256, nn.BatchNorm2d),
            *_conv_bn_relu(c2(256, 256, 3, padding=1), 256, nn.BatchNorm2d), nn.MaxPool2d(3, stride=2),
            *_conv_bn_relu(c2(256, 512, (5, 4)), 512, nn.BatchNorm2d))
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu(c3(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, nn.BatchNorm3d),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(c3(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, nn.BatchNorm3d),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, nn.BatchNorm3d),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, nn.BatchNorm3d),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, nn.BatchNorm3d),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(c3(256, 512, (1, 6, 6)), 512, nn.BatchNorm3d))
        self.netfcaud = self._head(embed_dim)
        self.netfclip = self._head(embed_dim)

    @staticmethod
    def _head(embed_dim: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, embed_dim)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR [0, 255] -> (N, embed_dim)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def load_syncnet(path: Path) -> SyncNet:
    """The network with the state dict at ``path`` (keys as in the module docstring)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - corrupt / pickled-module files fail in format-specific ways
        raise MemoZooError(f"SyncNet: {path} cannot be read as a state dict ({error}); expected the tensors of "
                           "syncnet_v2.model (keys netcnnaud.*, netcnnlip.*, netfcaud.*, netfclip.*)") from None
    if not isinstance(state, dict) or "netfcaud.3.weight" not in state:
        raise MemoZooError(f"SyncNet: {path} has no 'netfcaud.3.weight'; expected the state dict of "
                           "syncnet_v2.model (keys netcnnaud.*, netcnnlip.*, netfcaud.*, netfclip.*)")
    net = SyncNet(embed_dim=state["netfcaud.3.weight"].shape[0])
    missing, unexpected = net.load_state_dict(state, strict=False)
    # files saved before BatchNorm counted its batches lack num_batches_tracked; nothing else may be off
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise MemoZooError(f"SyncNet: {path} does not match the SyncNet layout: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    return net.eval()


# ---- audio features ------------------------------------------------------------------------------

def _mel_filterbank(filters: int, nfft: int, rate: int) -> np.ndarray:
    """Triangular filters on FFT bins, spaced evenly in mel from 0 Hz to rate / 2 (HTK mel)."""
    high = 2595 * np.log10(1 + (rate / 2) / 700.0)
    hz = 700 * (10 ** (np.linspace(0, high, filters + 2) / 2595.0) - 1)
    bins = np.floor((nfft + 1) * hz / rate)
    bank = np.zeros((filters, nfft // 2 + 1))
    for j in range(filters):
        left, centre, right = bins[j], bins[j + 1], bins[j + 2]
        for i in range(int(left), int(centre)):
            bank[j, i] = (i - left) / (centre - left)
        for i in range(int(centre), int(right)):
            bank[j, i] = (right - i) / (right - centre)
    return bank


def mfcc(signal: np.ndarray, rate: int = AUDIO_RATE) -> np.ndarray:
    """(frames, 13) MFCCs with python_speech_features' defaults (module docstring), in float64."""
    signal = np.asarray(signal, dtype=np.float64)
    frame_len, step = int(round(0.025 * rate)), int(round(0.01 * rate))
    emphasised = np.append(signal[:1], signal[1:] - 0.97 * signal[:-1])
    count = 1 if len(emphasised) <= frame_len else 1 + int(np.ceil((len(emphasised) - frame_len) / step))
    padded = np.zeros((count - 1) * step + frame_len)
    padded[:len(emphasised)] = emphasised
    index = np.arange(frame_len)[None, :] + step * np.arange(count)[:, None]
    power = np.abs(np.fft.rfft(padded[index], 512)) ** 2 / 512
    tiny = np.finfo(float).eps  # the reference replaces exact zeros before the log
    energy = power.sum(axis=1)
    energy[energy == 0] = tiny
    bands = power @ _mel_filterbank(26, 512, rate).T
    bands[bands == 0] = tiny
    cepstra = scipy.fft.dct(np.log(bands), type=2, axis=1, norm="ortho")[:, :13]
    cepstra *= 1 + (22 / 2.0) * np.sin(np.pi * np.arange(13) / 22)
    cepstra[:, 0] = np.log(energy)
    return cepstra


def resample_frames(frames: np.ndarray, fps: float, target: float) -> np.ndarray:
    """The frame shown at each time k / target (the latest one started by then)."""
    if abs(fps - target) < 1e-6:
        return frames
    count = max(1, int(np.floor(len(frames) / fps * target + 1e-9)))
    index = np.floor(np.arange(count) * fps / target + 1e-6).astype(int)
    return frames[np.clip(index, 0, len(frames) - 1)]


# ---- evaluation of one video ---------------------------------------------------------------------

SAMPLES_PER_FRAME = AUDIO_RATE // int(SYNCNET_FPS)  # 640 audio samples per video frame at 25 fps

# (first, stop) -> float32 (stop - first, 3, 224, 224) RGB [0, 255] crops of those 25 fps frames
CropSource = Callable[[int, int], torch.Tensor]


class SyncNetEvaluator:
    """Runs SyncNet on one video + audio and searches the offsets (module docstring).

    ``last_tracked`` says whether the last video was cut with a face track (``crop_mode``
    tracked and a track kept) rather than the fixed square."""

    def __init__(self, net: SyncNet, config: SyncNetOptions, device: torch.device):
        self.net = net.to(device)
        self.config = config
        self.device = device
        self._locator: FaceLocator | None = None
        self._detector: FaceDetector | None = None
        if config.crop_mode == "tracked":  # built here: a detector's model file fails early, not per video
            self._detector = build_detector(config.face_detector, model=config.detector_model)
        else:
            self._locator = FaceLocator(config)
        self.last_tracked = False

    @property
    def locator(self) -> FaceLocator:
        """The fixed square's finder (tracked mode: only for videos where no track is kept)."""
        if self._locator is None:
            self._locator = FaceLocator(self.config)
        return self._locator

    def embeddings(self, frames: np.ndarray, audio: np.ndarray, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(windows, D) video and audio embeddings of RGB uint8 ``frames`` (T, H, W, 3) and 16 kHz
        ``audio`` in [-1, 1]; windows = min(T, samples // 640) - 5 at 25 fps (of the face track's
        frames and their audio in tracked mode)."""
        c = self.config
        # SyncNet's windows pair 5 frames with 20 MFCC columns (10 ms each): the video must be at 25 fps
        frames = resample_frames(frames, fps, SYNCNET_FPS)
        self.last_tracked = False
        if self._detector is not None:
            track = main_face_track(frames, self._detector, c.min_track, c.num_failed_det, c.min_face_size)
            if track is not None:
                self.last_tracked = True
                first, last = int(track.frames[0]), int(track.frames[-1])
                # the track's stretch of the audio, as the reference cuts it: first / 25 s to (last + 1) / 25 s
                clip = audio[first * SAMPLES_PER_FRAME:(last + 1) * SAMPLES_PER_FRAME]
                return self._embed(self._tracked_source(frames, track), len(track), clip)
        square = self.locator.square(frames, CROP_SCALE, CROP_SHIFT)[:3]
        return self._embed(lambda a, b: crop_resize(frames[a:b], square, 224, self.device), len(frames), audio)

    def crop_embeddings(self, crops: np.ndarray, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``embeddings`` for face crops cut already: RGB uint8 (T, 224, 224, 3) at 25 fps (the
        reference's ``run_syncnet`` on the clips its pipeline wrote)."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
            raise MemoZooError(f"sync: face crops must be (T, {CROP_SIZE}, {CROP_SIZE}, 3), got {crops.shape}")
        return self._embed(lambda a, b: self._to_tensor(crops[a:b]), len(crops), audio)

    def _to_tensor(self, crops: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2).float()

    def _tracked_source(self, frames: np.ndarray, track: FaceTrack) -> CropSource:
        geometry = crop_geometry(track.boxes, self.config.crop_scale)
        first = int(track.frames[0])

        def cut(a: int, b: int) -> torch.Tensor:
            return self._to_tensor(np.stack([crop_face(frames[first + i], int(geometry.bsi[i]), geometry.rects[i])
                                             for i in range(a, b)]))
        return cut

    @torch.no_grad()
    def _embed(self, crops: CropSource, count: int, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the windows of ``count`` 25 fps crops (``crops``) and their ``audio``."""
        c = self.config
        usable = min(count, int(np.floor(len(audio) / SAMPLES_PER_FRAME)))
        windows = usable - WINDOW_FRAMES
        if windows < 1:
            raise MemoZooError(f"sync: {usable} frames with audio at {SYNCNET_FPS:g} fps; SyncNet needs at least "
                               f"{WINDOW_FRAMES + 1}")
        # int16 scale: the reference computes MFCCs on the integer samples of a 16-bit WAV
        cepstra = torch.from_numpy(mfcc(np.asarray(audio, np.float64) * 32768.0).T.copy()).float()  # (13, M)
        video_out, audio_out = [], []
        for first in range(0, windows, c.batch_size):
            last = min(windows, first + c.batch_size)
            batch = crops(first, last + WINDOW_FRAMES - 1)  # (n, 3, 224, 224)
            if c.bgr:
                batch = batch.flip(1)
            stacks = torch.stack([batch[i:i + WINDOW_FRAMES] for i in range(last - first)])  # (B, 5, 3, 224, 224)
            video_out.append(self.net.forward_lip(stacks.permute(0, 2, 1, 3, 4).contiguous()).double().cpu())
            mfcc_windows = torch.stack([cepstra[:, MFCC_PER_FRAME * i:MFCC_PER_FRAME * i + MFCC_WINDOW]
                                        for i in range(first, last)])[:, None]  # (B, 1, 13, 20)
            audio_out.append(self.net.forward_aud(mfcc_windows.to(self.device)).double().cpu())
        return torch.cat(video_out), torch.cat(audio_out)

    def search(self, frames: np.ndarray, audio: np.ndarray, fps: float) -> OffsetSearch:
        video, audio_embedding = self.embeddings(frames, audio, fps)
        return search_offsets(video, audio_embedding, self.config.max_offset)


class SyncScorer:
    """``lip_sync_filter``'s SyncScorer: (frames, audio, fps) -> SyncNet confidence (Sync-C)."""

    def __init__(self, evaluator: SyncNetEvaluator):
        self.evaluator = evaluator
        self.last_offset: int | None = None

    def __call__(self, frames: np.ndarray, audio: np.ndarray, fps: float) -> float:
        result = self.evaluator.search(frames, audio, fps)
        self.last_offset = result.av_offset
        return result.confidence


def load_sync_scorer(path: Path) -> SyncScorer:
    """The loader handed to ``lip_sync.register_syncnet``: default crop options, MEMO_ZOO_DEVICE."""
    return SyncScorer(SyncNetEvaluator(load_syncnet(Path(path)), SyncNetOptions(), resolve_device("auto")))
