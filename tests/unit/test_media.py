"""memo_zoo/data/media.py: round trips, 16 kHz mono audio from any input (spec D3), frame-rate
resampling, atomic writes, and a ``MediaError`` naming the file and the problem for every kind of
bad input (issue 4, "Bad input")."""

from __future__ import annotations

import numpy as np
import pytest

from memo_zoo.data import media
from memo_zoo.data.media import MediaError
from memo_zoo.errors import MemoZooError
from tests import data_fixtures as fx


def frame_indices(frames: np.ndarray) -> list[int]:
    """Which source frame each decoded frame shows (index_frames: grey level = 4 * index)."""
    return [int(round(float(frame.mean()) / 4)) for frame in frames]


def dominant_hz(audio: np.ndarray, rate: int = media.AUDIO_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)])


def test_round_trip_keeps_frames_rate_size_and_audio(tmp_path):
    path = media.write_video(tmp_path / "out" / "clip.mp4", fx.index_frames(16), 25, fx.tone(16 / 25)[0])
    info = media.probe(path)
    assert (info.has_video, info.has_audio, info.fps, info.frame_count) == (True, True, 25.0, 16)
    assert (info.width, info.height, info.audio_rate, info.audio_channels) == (32, 32, 16_000, 1)
    assert info.duration == pytest.approx(0.64, abs=0.03)
    frames, fps = media.read_frames(path)
    assert frames.shape == (16, 32, 32, 3) and frames.dtype == np.uint8 and fps == 25.0
    assert frame_indices(frames) == list(range(16))
    audio = media.read_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == pytest.approx(10_240, abs=160)  # AAC frames of 1024 samples; 10 ms slack
    assert dominant_hz(audio) == pytest.approx(440, abs=5)
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]  # no temporary file left behind


@pytest.mark.parametrize("name, rate, channels", [
    ("mono16k.wav", 16_000, 1), ("mono16k.m4a", 16_000, 1), ("stereo48k.m4a", 48_000, 2),
    ("stereo44k.wav", 44_100, 2),
])
def test_read_audio_gives_16khz_mono_from_any_input(tmp_path, name, rate, channels):
    path = fx.write_audio(tmp_path / name, seconds=1.0, rate=rate, channels=channels)
    info = media.probe(path)
    assert (info.has_video, info.audio_rate, info.audio_channels) == (False, rate, channels)
    audio = media.read_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # AAC pads its last frame of 1024 source samples, so an encoded second may run a little long.
    assert 15_990 <= len(audio) <= 16_000 + 1024 * 16_000 // rate + 16
    assert dominant_hz(audio) == pytest.approx(440, abs=5)
    assert 0.25 < np.abs(audio).max() <= 0.35  # the tone's amplitude: channels averaged, not summed


def test_fps_resampling_counts_and_picks_the_frame_on_screen(tmp_path):
    path = media.write_video(tmp_path / "two_seconds.mp4", fx.index_frames(50), 25)
    frames, fps = media.read_frames(path, fps=30)
    assert fps == 30.0 and len(frames) == 60  # 2 s at 30 fps
    # Output frame k is shown at k/30 s; the source frame on screen then is floor(k * 25 / 30).
    assert frame_indices(frames) == [k * 25 // 30 for k in range(60)]
    frames, _ = media.read_frames(path, fps=12.5)
    assert frame_indices(frames) == list(range(0, 50, 2))
    assert len(media.read_frames(path, fps=30, max_frames=7)[0]) == 7
    assert len(media.read_frames(path, max_frames=5)[0]) == 5
    assert media.read_frames(path, size=(16, 8))[0].shape == (50, 8, 16, 3)


def test_failed_write_leaves_no_temporary_file_and_keeps_the_old_target(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"the previous clip")
    with pytest.raises(ValueError):
        # Fails inside the encoder, after the video packets were muxed into the temporary file.
        media.write_video(target, fx.index_frames(4), 25, audio=np.array(["not audio"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    assert target.read_bytes() == b"the previous clip"
    with pytest.raises(ValueError, match="even width and height"):
        media.write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8), 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def _bad(tmp_path, kind):
    if kind == "missing":
        return tmp_path / "missing.mp4"
    if kind == "folder":
        (tmp_path / "folder.mp4").mkdir()
        return tmp_path / "folder.mp4"
    if kind == "empty":
        return fx.write_empty(tmp_path / "empty.mp4")
    if kind == "garbage":
        (tmp_path / "garbage.mp4").write_text("this is not a video " * 20)
        return tmp_path / "garbage.mp4"
    return fx.write_corrupt(tmp_path / "truncated.mp4")


@pytest.mark.parametrize("kind, reason", [
    ("missing", "file not found"), ("folder", "not a regular file"), ("empty", "empty file"),
    ("garbage", "cannot be opened as media"), ("truncated", "cannot be opened as media"),
])
@pytest.mark.parametrize("read", [media.probe, media.read_frames, media.read_audio], ids=lambda f: f.__name__)
def test_unusable_files_raise_media_error_naming_file_and_reason(tmp_path, kind, reason, read):
    path = _bad(tmp_path, kind)
    with pytest.raises(MediaError) as caught:
        read(path)
    error = caught.value
    assert isinstance(error, MemoZooError)  # so the CLI reports it as a user error (exit 2)
    assert error.path == str(path) and reason in error.reason and str(path) in str(error)


def test_truncated_data_behind_an_intact_index_is_an_error_not_a_shorter_clip(tmp_path):
    # "faststart" MP4s keep their index first: a cut download still opens and probes as complete,
    # and FFmpeg stops quietly at the end of the data. read_frames must not return part of the clip.
    path = fx.write_truncated_faststart(tmp_path / "cut.mp4")
    assert media.probe(path).frame_count == 16
    with pytest.raises(MediaError, match=r"video is truncated: \d+ of the 16 packets"):
        media.read_frames(path)
    audio = fx.write_truncated_audio(tmp_path / "cut.m4a")
    with pytest.raises(MediaError, match="audio is truncated: 8 of the 17 packets"):
        media.read_audio(audio)


def test_missing_streams_are_named(tmp_path):
    silent = fx.write_video_only(tmp_path / "silent.mp4")
    with pytest.raises(MediaError, match="has no audio stream"):
        media.read_audio(silent)
    assert media.probe(silent).has_audio is False
    voice = fx.write_audio(tmp_path / "voice.m4a")
    with pytest.raises(MediaError, match="has no video stream"):
        media.read_frames(voice)
    info = media.probe(voice)
    assert (info.has_video, info.fps, info.frame_count) == (False, None, None)
