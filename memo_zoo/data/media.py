"""Reading and writing talking-head media with PyAV: frames, 16 kHz mono audio, MP4 with audio.

Every failure inside a decoder becomes a ``MediaError`` naming the file and what was wrong, so
callers can skip and report a clip instead of crashing deep in FFmpeg (issue 4, "Bad input").
Writes are atomic: a video is encoded to a temporary file next to the target and renamed, so a
crash never leaves a half-written MP4 where a finished one is expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from memo_zoo.atomic import temporary_beside
from memo_zoo.data.rates import AUDIO_RATE  # its home is torch- and av-free; re-exported here
from memo_zoo.errors import MemoZooError


class MediaError(MemoZooError):
    """A media file that cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration: float  # seconds, the longest stream
    has_video: bool
    has_audio: bool
    fps: float | None = None
    frame_count: int | None = None  # from the container; may be an estimate
    width: int | None = None
    height: int | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None


def _open(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(path, f"cannot be opened as media ({error})") from None


def probe(path: str | Path) -> MediaInfo:
    """Streams, rates and duration of a media file, without decoding it."""
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        durations = []
        if container.duration is not None:
            durations.append(container.duration / av.time_base)
        info = {}
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            fps = float(rate) if rate else None
            if video.duration is not None and video.time_base is not None:
                durations.append(float(video.duration * video.time_base))
            frames = video.frames or (round(max(durations) * fps) if durations and fps else None)
            info.update(fps=fps, frame_count=frames, width=video.codec_context.width,
                        height=video.codec_context.height)
        if audio is not None:
            info.update(audio_rate=audio.codec_context.sample_rate, audio_channels=audio.codec_context.channels)
        return MediaInfo(str(path), max(durations, default=0.0), video is not None, audio is not None, **info)


def read_frames(path: str | Path, fps: float | None = None, size: tuple[int, int] | None = None,
                max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decoded RGB frames (T, H, W, 3) uint8 and their frame rate.

    ``fps`` resamples the video to that rate by taking, for each output time, the latest source
    frame shown at that time (how a player would show it). ``size`` = (width, height) resizes.
    """
    frames: list[np.ndarray] = []
    times: list[float] = []
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(path, "has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        source_fps = float(stream.average_rate or stream.guessed_rate or 0) or None
        packets, stopped_early = 0, False
        try:
            # Demux and decode separately so that the packets actually present can be counted
            # against what the header declares (see _check_complete).
            for packet in container.demux(stream):
                packets += 1 if packet.size else 0
                for frame in packet.decode():
                    if size is not None:
                        frame = frame.reformat(width=size[0], height=size[1])
                    frames.append(frame.to_ndarray(format="rgb24"))
                    times.append(float(frame.time) if frame.time is not None else len(times) / (source_fps or 25.0))
                    if max_frames is not None and fps is None and len(frames) >= max_frames:
                        stopped_early = True
                        break
                if stopped_early:
                    break
        except av.error.FFmpegError as error:
            if not frames:
                raise MediaError(path, f"video cannot be decoded ({error})") from None
            raise MediaError(path, f"video is truncated or corrupt after frame {len(frames)} ({error})") from None
        if not stopped_early:
            _check_complete(path, "video", packets, stream.frames)
    if not frames:
        raise MediaError(path, "video stream has no frames")
    video = np.stack(frames)
    if fps is None:
        return video, source_fps or 25.0
    start = times[0]
    # The last frame is shown for one source frame period, so the clip lasts until then.
    end = times[-1] + 1.0 / (source_fps or fps)
    count = max(1, int(round((end - start) * fps)))
    if max_frames is not None:
        count = min(count, max_frames)
    wanted = start + np.arange(count) / fps
    index = np.searchsorted(np.asarray(times), wanted + 1e-6, side="right") - 1
    return video[np.clip(index, 0, len(frames) - 1)], float(fps)


def read_audio(path: str | Path, sample_rate: int = AUDIO_RATE) -> np.ndarray:
    """The first audio stream as mono float32 in [-1, 1] at ``sample_rate`` (any input format)."""
    chunks: list[np.ndarray] = []
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "has no audio stream")
        stream = container.streams.audio[0]
        # Resample only the rate, keeping the channels (planar), and average them here: FFmpeg's
        # own stereo->mono rematrix adds the channels at -3 dB each, which makes identical channels
        # 1.41x louder than the mono original and can leave [-1, 1]. The mean is the downmix of
        # librosa.to_mono and of the reference pipelines' torchaudio code.
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
        packets = 0
        try:
            for packet in container.demux(stream):
                packets += 1 if packet.size else 0
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
        except av.error.FFmpegError as error:
            raise MediaError(path, f"audio cannot be decoded ({error})") from None
        _check_complete(path, "audio", packets, stream.frames)
    if not chunks:
        raise MediaError(path, "audio stream has no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _check_complete(path: str | Path, kind: str, packets: int, declared: int) -> None:
    """Raise if fewer packets were read than the container's index lists.

    FFmpeg stops quietly at the end of a file whose data was cut off while its index survived
    (an MP4 with the index first, "faststart", or a partly cut index at the end), so a truncated
    download would otherwise decode to a shorter clip with no error. ``declared`` is 0 where the
    container does not say (Matroska, WAV); nothing can be checked then.
    """
    if declared and packets < declared:
        raise MediaError(path, f"{kind} is truncated: {packets} of the {declared} packets the container "
                               "lists are in the file")


def write_video(path: str | Path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
                sample_rate: int = AUDIO_RATE, crf: int = 18) -> Path:
    """Encode RGB frames (T, H, W, 3) uint8 as H.264 MP4, with mono audio muxed in as AAC (spec I4).

    Width and height must be even (H.264 4:2:0). Written atomically. For videos too long to hold
    in memory, use ``VideoWriter`` and hand it frames as they are made.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    with VideoWriter(path, fps, width=frames.shape[2], height=frames.shape[1], audio=audio,
                     sample_rate=sample_rate, crf=crf) as writer:
        writer.write(frames)
    return Path(path)


# x264's macroblock-tree rate control reads uninitialised memory in its lookahead: the same
# frames encoded again gave different bytes in about 1 encode in 50 (decoded frames off by up
# to 15 levels), which breaks "same seed -> identical files". With it off, 1,000+ encodes of
# the same frames were byte-identical; the cost is a slightly larger file at the same CRF.
X264_OPTIONS = {"preset": "veryfast", "x264-params": "mbtree=0"}
AAC_FRAME = 1024
# Containers that hold H.264 video + AAC audio, by file extension (FFmpeg muxer names). WebM
# (VP8/9 + Vorbis/Opus only), AVI and the rest cannot carry this pair, so they are refused rather
# than written as an MP4 under a name that promises something else.
VIDEO_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def container_format(path: str | Path) -> str:
    """The FFmpeg muxer of ``path``'s extension (``VIDEO_CONTAINERS``); ``ValueError`` listing the
    accepted extensions for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_CONTAINERS:
        named = f"extension {suffix!r}" if suffix else "no extension"
        raise ValueError(f"{path}: {named}; the video (H.264 + AAC) can be written as "
                         f"{', '.join(VIDEO_CONTAINERS)}")
    return VIDEO_CONTAINERS[suffix]


class VideoWriter:
    """Streaming H.264 + AAC MP4 writer: frames go to the encoder as they come (spec I4).

    Use as a context manager. The file appears at ``path`` only when the block ends without an
    error (encoded to a temporary file beside it, then renamed); on an error the temporary file
    is removed and an existing ``path`` is left untouched. The audio (mono float32 at
    ``sample_rate``, any length, or None) is known up front and muxed after the last frame.
    """

    def __init__(self, path: str | Path, fps: float, width: int, height: int, audio: np.ndarray | None = None,
                 sample_rate: int = AUDIO_RATE, crf: int = 18):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 needs even width and height, got {width}x{height}")
        self.path = Path(path)
        self.fps, self.width, self.height = fps, width, height
        self.sample_rate, self.crf = sample_rate, crf
        self.frames_written = 0
        self._audio = None if audio is None else np.asarray(audio, dtype=np.float32).reshape(-1)
        self._temp: str | None = None
        self._container = None
        self._video = None

    def __enter__(self) -> "VideoWriter":
        try:
            muxer = container_format(self.path)
        except ValueError as error:
            raise MediaError(self.path, str(error).split(": ", 1)[1]) from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temp = temporary_beside(self.path, suffix=self.path.suffix)
        self._container = av.open(self._temp, mode="w", format=muxer)
        self._video = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        self._video.width, self._video.height = self.width, self.height
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(self.crf), **X264_OPTIONS}
        self._sound = None
        if self._audio is not None:  # every stream must exist before the first packet is muxed
            self._sound = self._container.add_stream("aac", rate=self.sample_rate)
            self._sound.layout = "mono"
        return self

    def write(self, frames: np.ndarray) -> None:
        """Append frames (T, H, W, 3) or one frame (H, W, 3), uint8 RGB."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, {self.height}, {self.width}, 3) uint8, "
                             f"got {frames.shape} {frames.dtype}")
        for image in frames:
            for packet in self._video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                self._container.mux(packet)
        self.frames_written += len(frames)

    def __exit__(self, kind, error, trace) -> None:
        try:
            if error is None:
                self._finish()
            self._container.close()
            if error is None:
                os.replace(self._temp, self.path)
        finally:
            Path(self._temp).unlink(missing_ok=True)

    def _finish(self) -> None:
        for packet in self._video.encode():
            self._container.mux(packet)
        if self._sound is None:
            return
        sound = self._sound
        samples = np.clip(self._audio, -1.0, 1.0).reshape(1, -1)
        for start in range(0, samples.shape[1], AAC_FRAME):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + AAC_FRAME]),
                                               format="flt", layout="mono")
            chunk.sample_rate = self.sample_rate
            chunk.pts = start
            for packet in sound.encode(chunk):
                self._container.mux(packet)
        for packet in sound.encode():
            self._container.mux(packet)
