"""``video_folder``: a plain folder of talking-head videos with their audio muxed in.

The layout of last resort (a user's own recordings, a scraped set): every file matching
``pattern`` under ``root`` is a clip; its id is the path relative to the root without the suffix
(``speaker1/take3``), so files of one name in different subfolders stay distinct. Nothing is
known about speaker or emotion; the emotion detector (spec §4) labels such clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator


from memo_zoo.data.clip import ClipRecord
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.datasets.readers.common import LayoutReader, sorted_files
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.datasets.readers.configs import VideoFolderConfig


class VideoFolderDataset(LayoutReader):
    name = "video_folder"

    def __init__(self, config: VideoFolderConfig):
        super().__init__(config)
        self.config: VideoFolderConfig = config
        where = "under" if config.recursive else "directly in"
        self.expected = f"video files matching {config.pattern!r} {where} the folder"

    def _find(self, root: Path) -> Iterator[ClipRecord]:
        try:
            videos = sorted_files(root, self.config.pattern, self.config.recursive)
        except (ValueError, NotImplementedError) as error:  # pathlib's verdict on e.g. an absolute pattern
            raise MemoZooError(f"pattern {self.config.pattern!r} cannot be used under {root}: {error}") from None
        for video in videos:
            clip_id = video.relative_to(root).with_suffix("").as_posix()
            yield ClipRecord(clip_id=clip_id, video=video)


def build(config: VideoFolderConfig) -> VideoFolderDataset:
    return VideoFolderDataset(config)
