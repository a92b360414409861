"""The ``voice_activity`` preprocessing stage (issue 20): drop clips with too little speech, or trim a
clip to its speech span, on small encoded clips whose audio is eSpeak NG speech (talking_world,
offline) padded with silence, silence, or low noise. The Silero model is the one in the silero-vad
wheel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.media import probe, read_audio, write_video
from memo_zoo.data.pipeline import run_pipeline
from memo_zoo.perception.voice_activity import detect_speech
from memo_zoo_plugins.datasets.talking_world.speech import synthesize
from memo_zoo_plugins.preprocess.configs import VoiceActivityStageConfig
from memo_zoo_plugins.preprocess.voice_activity import VoiceActivityFilter, build
from tests.fake_datasets import ListDataset

FPS = 25.0
RATE = 16_000
BEFORE, AFTER = 1.0, 0.7


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 2.6 s of speech, padded with 1.0 s of silence before and 0.7 s after."""
    sentence = synthesize("Mary found a blue map by the river this morning.").samples
    return np.concatenate([np.zeros(int(BEFORE * RATE), np.float32), sentence,
                           np.zeros(int(AFTER * RATE), np.float32)])


@pytest.fixture(scope="module")
def stage() -> VoiceActivityFilter:
    return build(VoiceActivityStageConfig())


def clip_of(path: Path, audio: np.ndarray | None, seconds: float | None = None) -> ClipRecord:
    """A small grey clip as long as its audio (or ``seconds``), the audio muxed in."""
    seconds = seconds if seconds is not None else len(audio) / RATE
    frames = np.full((int(round(seconds * FPS)), 32, 32, 3), 120, np.uint8)
    write_video(path, frames, FPS, audio)
    return ClipRecord(path.stem, path, speaker="spk", emotion="neutral")


def test_drop_mode_keeps_a_speech_clip_unchanged(stage, speech, tmp_path):
    clip = clip_of(tmp_path / "talk.mp4", speech)
    result = stage.process(clip, tmp_path / "out")
    assert result.kept and result.clips == (clip,)
    assert result.reason.startswith("speech ") and "1 segment(s)" in result.reason
    assert 0.5 <= result.value <= 0.8  # 2.6 s of speech in a 4.3 s clip


@pytest.mark.parametrize("level", [0.0, 0.003])
def test_a_silent_or_hissing_clip_is_dropped_with_the_reason(stage, tmp_path, level):
    audio = (np.random.default_rng(0).standard_normal(3 * RATE) * level).astype(np.float32)
    result = stage.process(clip_of(tmp_path / "quiet.mp4", audio), tmp_path / "out")
    assert not result.kept and result.value == 0.0
    # AAC rounds the track up to whole 1024-sample frames: 3.00 s comes back as 3.00-3.07 s.
    assert re.fullmatch(r"no speech found in 3\.0\d s of audio \(Silero VAD, threshold 0\.5\)", result.reason)


def test_drop_mode_drops_a_clip_under_the_speech_fraction(speech, tmp_path):
    strict = build(VoiceActivityStageConfig(min_speech_fraction=0.9))
    result = strict.process(clip_of(tmp_path / "talk.mp4", speech), tmp_path / "out")
    assert not result.kept and 0.5 <= result.value < 0.9
    assert result.reason.startswith("speech ") and result.reason.endswith(" < 90%")


def test_a_clip_without_audio_is_dropped(stage, tmp_path):
    result = stage.process(clip_of(tmp_path / "mute.mp4", None, seconds=1.0), tmp_path / "out")
    assert not result.kept and result.reason == "no audio track: no speech to detect"


def test_trim_mode_writes_the_speech_span_with_its_audio(speech, tmp_path):
    trim = build(VoiceActivityStageConfig(mode="trim"))
    clip = clip_of(tmp_path / "talk.mp4", speech)
    span = detect_speech(read_audio(clip.video)).span
    out = tmp_path / "out"
    result = trim.process(clip, out)
    assert result.kept and result.reason.startswith("trimmed to ")
    [trimmed] = result.clips
    assert trimmed.video.parent == out and trimmed.clip_id == clip.clip_id and trimmed.speaker == "spk"
    first, last = int(np.floor(span.start * FPS + 1e-6)), int(np.ceil(span.end * FPS - 1e-6))
    assert trimmed.frame_count == last - first == probe(trimmed.video).frame_count
    # The silence padding (1.0 s before, 0.7 s after) is gone, give or take the detector's own pad.
    assert BEFORE - 0.15 <= first / FPS <= BEFORE and len(speech) / RATE - AFTER <= last / FPS
    assert last / FPS <= len(speech) / RATE - AFTER + 0.2
    # The trimmed file's audio is that span of the original: speech from (nearly) its first sample.
    cut = read_audio(trimmed.video)
    assert abs(len(cut) / RATE - (last - first) / FPS) < 0.07  # AAC frames round the end
    again = detect_speech(cut)
    assert again.span is not None and again.span.start < 0.1 and again.speech_fraction > 0.85
    assert not list(out.glob(".*"))  # atomic writes leave no temporary file behind


def test_trim_mode_drops_a_span_shorter_than_min_seconds(speech, tmp_path):
    trim = build(VoiceActivityStageConfig(mode="trim", min_seconds=3.0))
    result = trim.process(clip_of(tmp_path / "talk.mp4", speech), tmp_path / "out")
    assert not result.kept and "shorter than min_seconds 3" in result.reason
    assert 2.4 < result.value < 3.0


def test_the_config_is_strict_and_extends_the_detector_options():
    config = VoiceActivityStageConfig(mode="trim", threshold=0.6, pad_seconds=0.05)
    assert config.threshold == 0.6 and config.mode == "trim"
    with pytest.raises(ValidationError):
        VoiceActivityStageConfig(mode="cut")
    with pytest.raises(ValidationError):
        VoiceActivityStageConfig(min_speech_fraction=1.5)
    with pytest.raises(ValidationError):
        VoiceActivityStageConfig(no_such_option=1)


def test_the_pipeline_reports_the_dropped_silent_clip_and_publishes_the_speech_clip(stage, speech, tmp_path):
    clips = [clip_of(tmp_path / "talk.mp4", speech), clip_of(tmp_path / "quiet.mp4", np.zeros(2 * RATE, np.float32))]
    result = run_pipeline(ListDataset(clips), [stage], tmp_path / "clean", progress=lambda items, **_: items)
    assert [c.clip_id for c in result.clips] == ["talk"]
    [dropped] = result.dropped
    assert dropped.stage == "voice_activity" and dropped.reason.startswith("no speech found")
    lines = [json.loads(line) for line in result.report.read_text().splitlines()]
    [line] = [entry for entry in lines if entry["clip"] == "quiet"]
    assert not line["kept"] and line["value"] == 0.0 and "no speech found" in line["reason"]
