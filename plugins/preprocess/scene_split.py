"""``preprocess: {kind: scene_split}``: cut a clip at scene changes, then into pieces under 30 s.

Spec §7: "Scene cuts -> clips under 30 s". Cuts are found by PySceneDetect's ``ContentDetector``
(mean HSV change between consecutive frames above ``threshold``); each scene longer than
``max_seconds`` is cut into equal pieces no longer than that; pieces shorter than ``min_seconds``
are left out. Every piece is written with its own span of the audio.
"""

from __future__ import annotations

import math
from pathlib import Path

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.media import MediaError
from memo_zoo.data.pipeline import StageResult, audio_span, load_clip, write_clip
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.preprocess.configs import SceneSplitConfig


def detect_scenes(video: Path, threshold: float, min_scene_frames: int) -> list[tuple[int, int]]:
    """Frame ranges ``[start, end)`` of the scenes of ``video`` (the whole video when it has no cut)."""
    from scenedetect import ContentDetector, detect

    try:
        scenes = detect(str(video), ContentDetector(threshold=threshold, min_scene_len=min_scene_frames),
                        backend="pyav", start_in_scene=True)
    except Exception as error:  # PySceneDetect's own errors (VideoOpenFailure, ...) share no base class
        raise MediaError(video, f"scene detection failed ({type(error).__name__}: {error})") from None
    return [(int(start.frame_num), int(end.frame_num)) for start, end in scenes]


def split_span(start: int, end: int, max_frames: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into the fewest equal pieces of at most ``max_frames`` frames."""
    count = max(1, math.ceil((end - start) / max_frames))
    bounds = [start + round(i * (end - start) / count) for i in range(count + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


class SceneSplit:
    name = "scene_split"

    def __init__(self, config: SceneSplitConfig):
        self.config = config

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult:
        config = self.config
        frames, fps, audio = load_clip(clip)
        scenes = detect_scenes(clip.video, config.threshold, config.min_scene_frames)
        # PySceneDetect decodes the file itself; clamp to the frames read here in case they disagree
        # by a frame at the end.
        scenes = [(min(a, len(frames)), min(b, len(frames))) for a, b in scenes] or [(0, len(frames))]
        max_frames = max(1, math.floor(config.max_seconds * fps + 1e-6))
        min_frames = math.ceil(config.min_seconds * fps - 1e-6)
        pieces = [p for a, b in scenes for p in split_span(a, b, max_frames)]
        kept = [(a, b) for a, b in pieces if b - a >= max(1, min_frames)]
        if not kept:
            longest = max((b - a for a, b in pieces), default=0) / fps
            return StageResult.drop(f"no piece of at least {config.min_seconds:g} s "
                                    f"(longest {longest:.2f} s)", longest)
        note = f"{len(scenes)} scene(s), {len(pieces)} piece(s), {len(pieces) - len(kept)} too short"
        if kept == [(0, len(frames))]:
            return StageResult.keep(clip, reason=note, value=1)  # nothing to cut: no lossy re-encode
        outputs = [write_clip(clip, out_dir, frames[a:b], fps, audio_span(audio, a, b, fps),
                              clip_id=f"{clip.clip_id}#{number:03d}")
                   for number, (a, b) in enumerate(kept)]
        return StageResult.keep(*outputs, reason=note, value=len(outputs))


def build(config: SceneSplitConfig) -> SceneSplit:
    return SceneSplit(config)
