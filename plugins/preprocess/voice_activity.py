"""``preprocess: {kind: voice_activity}``: drop clips with too little speech, or trim them to it.

A talking-head model learns lip motion from the audio; a clip with music, noise or silence where
the speech should be teaches it nothing about lip sync (issue 20). The core's Silero detector
(``memo_zoo.perception.voice_activity``, the model shipped in the silero-vad wheel, loaded once
per process) finds the speech segments of the clip's 16 kHz mono audio, then:

``mode: drop``: the clip goes on unchanged when at least ``min_speech_fraction`` of its audio lies
in speech segments, else it is dropped with "speech X s of Y s (Z%) < W%" and the fraction as the
value. Only the audio is decoded.

``mode: trim``: the clip is cut to its speech span, from the first segment's start to the last
one's end (already padded by ``pad_seconds``), widened to whole frames (frame ``floor(start x
fps)`` up to ``ceil(end x fps)``), and written with that span of its audio the way scene_split
writes its pieces (``write_clip``: H.264 + AAC, atomically, ``<out_dir>/<clip>.mp4``). A span
shorter than ``min_seconds`` or with less than ``min_speech_fraction`` of speech drops the clip; a
span that is the whole clip keeps it as it is, with no lossy re-encode.

Either way a clip without an audio track, or without any speech segment, is dropped.
"""

from __future__ import annotations

import math
from pathlib import Path

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.media import read_frames
from memo_zoo.data.pipeline import StageResult, audio_span, read_clip_audio, write_clip
from memo_zoo.perception.voice_activity import VoiceActivity, VoiceActivityDetector
from memo_zoo_plugins.preprocess.configs import VoiceActivityStageConfig

__all__ = ["VoiceActivityFilter", "VoiceActivityStageConfig", "build"]


def _share(speech: float, total: float) -> str:
    return f"speech {speech:.2f} s of {total:.2f} s ({speech / total if total > 0 else 0:.0%})"


class VoiceActivityFilter:
    name = "voice_activity"

    def __init__(self, config: VoiceActivityStageConfig, detector: VoiceActivityDetector | None = None):
        self.config = config
        # Built here, so that a missing model file stops the run before the first clip, not at each one.
        self.detector = detector if detector is not None else VoiceActivityDetector(config)

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult:
        audio = read_clip_audio(clip)
        if audio is None:
            return StageResult.drop("no audio track: no speech to detect")
        activity = self.detector.detect(audio)
        if not activity.segments:
            return StageResult.drop(f"no speech found in {activity.duration:.2f} s of audio (Silero VAD, "
                                    f"threshold {self.config.threshold:g})", 0.0)
        if self.config.mode == "trim":
            return self._trim(clip, out_dir, audio, activity)
        fraction = activity.speech_fraction
        label = _share(activity.speech_seconds, activity.duration)
        if fraction < self.config.min_speech_fraction:
            return StageResult.drop(f"{label} < {self.config.min_speech_fraction:.0%}", fraction)
        return StageResult.keep(clip, reason=f"{label}, {len(activity.segments)} segment(s)", value=fraction)

    def _trim(self, clip: ClipRecord, out_dir: Path, audio, activity: VoiceActivity) -> StageResult:
        config = self.config
        frames, fps = read_frames(clip.video)
        span = activity.span
        # Whole frames that cover the span; 1e-6 keeps a bound that falls on a frame edge from
        # taking one more frame through floating-point error.
        first = max(0, math.floor(span.start * fps + 1e-6))
        last = min(len(frames), math.ceil(span.end * fps - 1e-6))
        seconds = (last - first) / fps
        if seconds < config.min_seconds or last <= first:
            return StageResult.drop(f"speech span {seconds:.2f} s ({first / fps:.2f}-{last / fps:.2f} s) is shorter "
                                    f"than min_seconds {config.min_seconds:g}", seconds)
        speech = min(activity.speech_seconds, seconds)
        fraction = speech / seconds
        label = _share(speech, seconds)
        if fraction < config.min_speech_fraction:
            return StageResult.drop(f"{label} of the speech span < {config.min_speech_fraction:.0%}", fraction)
        if first == 0 and last == len(frames):
            return StageResult.keep(clip, reason=f"{label}; speech spans the whole clip", value=fraction)
        output = write_clip(clip, out_dir, frames[first:last], fps, audio_span(audio, first, last, fps))
        return StageResult.keep(output, reason=f"trimmed to {first / fps:.2f}-{last / fps:.2f} s of "
                                               f"{len(frames) / fps:.2f} s; {label}", value=fraction)


def build(config: VoiceActivityStageConfig) -> VoiceActivityFilter:
    return VoiceActivityFilter(config)
