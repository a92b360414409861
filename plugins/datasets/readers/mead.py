"""``mead``: MEAD, the dataset of emotion decoupling (spec §11, L4).

    <root>/<actor>/video/<view>/<emotion>/level_<n>/<NNN>.mp4
    <root>/<actor>/audio/<emotion>/level_<n>/<NNN>.m4a

Views: front, down, top, left_30, left_60, right_30, right_60 (``views`` picks; the paper's
talking-head setting is ``front``). Emotions (folder names): angry, contempt, disgusted, fear,
happy, neutral, sad, surprised, mapped to the paper's classes (spec E4) by ``common.MEAD_EMOTIONS``:
``fear`` -> ``fearful``, ``contempt`` -> ``others`` by default (no paper class, and spec D2 sends
labels without a class to ``others``), or -> ``disgusted`` with ``contempt_as: disgusted`` for
those who prefer merging it with its nearest basic emotion. Speaker = actor (``M003``), intensity
= level (1-3; neutral has level 1 only), view = the camera. Clip id =
``<actor>/<view>/<emotion>/level_<n>/<NNN>``. A clip without its audio file is skipped unless
``audio: muxed`` uses the mp4's own track.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator


from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.datasets.readers.common import (
    MEAD_EMOTIONS, LayoutReader, contempt_table, map_emotion, sorted_files,
)
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.datasets.readers.configs import MeadConfig

_LEVEL = re.compile(r"^level_(\d+)$")
AUDIO_SUFFIXES = (".m4a", ".wav", ".aac")  # .m4a as distributed; converted copies are common


class MeadDataset(LayoutReader):
    name = "mead"

    def __init__(self, config: MeadConfig):
        super().__init__(config)
        self.config: MeadConfig = config
        self.table = contempt_table(MEAD_EMOTIONS, config.contempt_as)
        self.expected = (f"<actor>/video/<view>/<emotion>/level_<n>/<NNN>.mp4 for views {config.views}, "
                         "with audio in <actor>/audio/<emotion>/level_<n>/<NNN>.m4a")

    def _find(self, root: Path) -> Iterator[ClipRecord | SkippedClip]:
        actors = sorted(d for d in root.iterdir() if (d / "video").is_dir())
        if not actors:
            raise MemoZooError(f"dataset root {root} does not look like the mead layout: no <actor>/video/ "
                               f"folder in it; expected {self.expected}")
        for actor in actors:
            for view in self.config.views:
                for video in sorted_files(actor / "video" / view, "*/*/*.mp4"):
                    yield from self._candidate(actor, view, video)

    def _candidate(self, actor: Path, view: str, video: Path) -> Iterator[ClipRecord | SkippedClip]:
        emotion, level_dir = video.parent.parent.name, video.parent.name
        level = _LEVEL.match(level_dir)
        if level is None:
            yield self.skip(video, f"folder {level_dir!r} is not level_<n>")
            return
        if emotion not in MEAD_EMOTIONS:
            yield self.skip(video, f"folder {emotion!r} is not a MEAD emotion ({', '.join(sorted(MEAD_EMOTIONS))})")
            return
        intensity = int(level.group(1))
        if emotion not in self.config.emotions or intensity not in self.config.levels:
            return  # left out by choice, not a problem to report
        audio = None
        if self.config.audio == "separate":
            base = actor / "audio" / emotion / level_dir / video.stem
            audio = next((base.with_suffix(s) for s in AUDIO_SUFFIXES if base.with_suffix(s).is_file()), None)
            if audio is None:
                yield self.skip(video, f"audio file {base.with_suffix('.m4a')} not found")
                return
        yield ClipRecord(
            clip_id=f"{actor.name}/{view}/{emotion}/{level_dir}/{video.stem}", video=video, audio=audio,
            speaker=actor.name, emotion=map_emotion(emotion, self.table), source_emotion=emotion,
            intensity=intensity, view=view)


def build(config: MeadConfig) -> MeadDataset:
    return MeadDataset(config)
