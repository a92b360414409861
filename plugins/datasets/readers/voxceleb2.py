"""``voxceleb2``: VoxCeleb2 as distributed (spec §11; the paper's Table 1 test set).

    <root>/<split>/mp4/idXXXXX/<youtube_id>/NNNNN.mp4     25 fps face tracks
    <root>/<split>/aac/idXXXXX/<youtube_id>/NNNNN.m4a     their audio, a parallel tree

``split`` is ``dev`` or ``test``. The test archives unpack to ``mp4/`` and ``aac/`` without a
split folder, so a root that itself holds ``mp4/`` is read as the split folder (and, if it is
named ``dev`` or ``test``, its name is the split in the clip ids). Speaker = the
``idXXXXX`` folder; clip id = ``<split>/<speaker>/<youtube_id>/<NNNNN>``. With ``audio: separate``
(the default) a clip whose ``.m4a`` is missing is skipped with the path it looked for; with
``audio: muxed`` the mp4's own track is used (the mp4s carry one) and the aac tree is not needed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator


from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.datasets.readers.common import LayoutReader, sorted_files
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.datasets.readers.configs import VoxCeleb2Config

_SPEAKER = re.compile(r"^id\d+$")
AUDIO_SUFFIXES = (".m4a", ".aac", ".wav")  # .m4a as distributed; converted copies are common


class VoxCeleb2Dataset(LayoutReader):
    name = "voxceleb2"

    def __init__(self, config: VoxCeleb2Config):
        super().__init__(config)
        self.config: VoxCeleb2Config = config
        self.expected = (f"{config.split}/mp4/idXXXXX/<youtube_id>/NNNNN.mp4 with audio in "
                         f"{config.split}/aac/idXXXXX/<youtube_id>/NNNNN.m4a")

    def _find(self, root: Path) -> Iterator[ClipRecord | SkippedClip]:
        split_dir = root / self.config.split
        if not (split_dir / "mp4").is_dir():
            if not (root / "mp4").is_dir():
                raise MemoZooError(f"dataset root {root} does not look like the voxceleb2 layout: "
                                   f"{split_dir / 'mp4'} not found; expected {self.expected}")
            split_dir = root  # the root is the split folder itself (how the test archives unpack)
        # Clip ids carry the split; a split folder given as the root names it by its own name.
        split = root.name if split_dir == root and root.name in ("dev", "test") else self.config.split
        mp4_dir, aac_dir = split_dir / "mp4", split_dir / "aac"
        for video in sorted_files(mp4_dir, "*/*/*.mp4"):
            utterance, youtube_id, speaker = video.stem, video.parent.name, video.parent.parent.name
            if not _SPEAKER.match(speaker):
                yield self.skip(video, f"speaker folder {speaker!r} is not a VoxCeleb id (idNNNNN)")
                continue
            audio = None
            if self.config.audio == "separate":
                base = aac_dir / speaker / youtube_id / utterance
                audio = next((base.with_suffix(s) for s in AUDIO_SUFFIXES if base.with_suffix(s).is_file()), None)
                if audio is None:
                    yield self.skip(video, f"audio file {base.with_suffix('.m4a')} not found")
                    continue
            yield ClipRecord(clip_id=f"{split}/{speaker}/{youtube_id}/{utterance}", video=video,
                             audio=audio, speaker=speaker)


def build(config: VoxCeleb2Config) -> VoxCeleb2Dataset:
    return VoxCeleb2Dataset(config)
