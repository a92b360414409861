"""``hdtf``: HDTF clips named ``<name>_<idx>.mp4`` or ``<subset>_<name>_<idx>.mp4`` (spec §11).

HDTF's videos come from three sources, which the file names carry as a prefix: ``RD``
(``RD_Radio*``), ``WDA`` and ``WRA`` (weekly Democratic / Republican addresses), e.g.
``WDA_BarackObama_000.mp4``.
The speaker is the ``<name>`` part; clips cut further by a preprocessing script often get a second
index (``WDA_BarackObama_000_3.mp4``), so trailing ``_<digits>`` groups are dropped from the
speaker too (speaker ``BarackObama``). The clip id is the path relative to the root without the
suffix. Audio is muxed into the clips; frames are 512x512 after the usual crop but any size is
read.
"""

from __future__ import annotations

import re
from pathlib import Path


from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.datasets.readers.common import LayoutReader, sorted_files
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.datasets.readers.configs import HdtfConfig


def parse_name(stem: str, subsets: list[str]) -> tuple[str | None, str, str] | None:
    """``(subset, speaker, index)`` of an HDTF clip stem, or None if it does not follow the scheme."""
    # "(?!)" never matches: with no subsets configured every prefix is part of the name.
    prefix = "|".join(re.escape(s) for s in subsets) or "(?!)"
    match = re.match(rf"^(?:(?P<subset>{prefix})_)?(?P<name>.+)_(?P<idx>\d+)$", stem)
    if match is None:
        return None
    # The last "_<digits>" is the index; earlier numeric groups are indices of an earlier cut.
    name = re.sub(r"(_\d+)+$", "", match.group("name")) or match.group("name")
    return match.group("subset"), name, match.group("idx")


class HdtfDataset(LayoutReader):
    name = "hdtf"
    expected = "HDTF clips <name>_<idx>.mp4 or <subset>_<name>_<idx>.mp4 (e.g. WDA_BarackObama_000.mp4)"

    def __init__(self, config: HdtfConfig):
        super().__init__(config)
        self.config: HdtfConfig = config

    def _find(self, root: Path) -> list[ClipRecord | SkippedClip]:
        found: list[ClipRecord | SkippedClip] = []
        for video in sorted_files(root, "*.mp4", self.config.recursive):
            parsed = parse_name(video.stem, self.config.subsets)
            if parsed is None:
                found.append(self.skip(video, "file name does not follow HDTF's <name>_<idx>.mp4 or "
                                              "<subset>_<name>_<idx>.mp4"))
                continue
            _, speaker, _ = parsed
            found.append(ClipRecord(clip_id=video.relative_to(root).with_suffix("").as_posix(), video=video,
                                    speaker=speaker))
        if found and not any(isinstance(item, ClipRecord) for item in found):
            # Videos, but none named the HDTF way: this is some other layout, not a bad HDTF clip.
            raise MemoZooError(f"dataset root {root} does not look like the hdtf layout: none of its "
                               f"{len(found)} .mp4 files is named the HDTF way; expected {self.expected}")
        return found


def build(config: HdtfConfig) -> HdtfDataset:
    return HdtfDataset(config)
