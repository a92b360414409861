"""Loss regions measured per clip: the mouth box of each training clip from its landmarks.

A recipe's fixed ``box`` suits aligned crops whose mouth sits in one place (talking_world's
portraits, the spec §7 crop of a frontal face). Real clips differ: a longer chin, a face lower in
the crop, a head turned. A region with ``source: landmarks`` is measured on every training clip
instead (``memo_zoo.train.regions.landmark_measurer``: dlib's 68-point lips, median over sampled
frames, widened by ``margin``), and each sample's loss map uses its own clip's box.

Measuring runs a face detector and landmarks on a few frames per clip, so each clip's box is kept
beside its decoded frames in the frame cache:

    <cache_dir>/frames/<clip key>/region-<digest>.json    {"box": [x0, y0, x1, y1] | null}

``digest`` hashes what the box depends on (the region's margin and sampling, the detector kind
that ran); the clip key already covers the source file and the frame size. A clip where no face
is found stores ``null`` and uses the region's ``box`` (counted and logged).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from memo_zoo.atomic import write_atomically
from memo_zoo.progress import progress
from memo_zoo.train.part_configs import LossRegion

Box = tuple[float, float, float, float]


class ClipFrames(Protocol):
    """What measuring needs of a dataset: each clip's cache folder and its uint8 frames."""

    clips: Sequence[object]

    def clip_directory(self, clip: int) -> Path: ...

    def clip_frames(self, clip: int) -> np.ndarray: ...


def region_file(directory: Path, region: LossRegion, detector_kind: str) -> Path:
    identity = json.dumps({"region": "mouth", "margin": region.margin, "sample_every": region.sample_every,
                           "detector": detector_kind}, sort_keys=True)
    return directory / f"region-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.json"


class ClipRegions:
    """Per-clip boxes of the ``source: landmarks`` regions of a training (module docstring)."""

    def __init__(self, boxes: dict[str, list[Box]], fallbacks: dict[str, int]) -> None:
        self.boxes = boxes          # region name -> box of clip index
        self.fallbacks = fallbacks  # region name -> clips where no face was found

    def of(self, name: str, clips: Sequence[int]) -> list[Box]:
        return [self.boxes[name][clip] for clip in clips]


def measure_clip_regions(samples: ClipFrames, regions: Sequence[LossRegion],
                         measure: Callable[[np.ndarray, LossRegion], Box | None] | None = None,
                         detector_kind: str | None = None) -> ClipRegions | None:
    """Boxes of every clip for each region with ``source: landmarks`` (None when there is none).

    ``measure(frames, region)`` gives a clip's box or None when it finds no face; by default
    ``regions.landmark_measurer`` with the ``best`` detector, whose kind goes in the file name.
    """
    measured = [r for r in regions if r.source == "landmarks"]
    if not measured:
        return None
    if measure is None:
        from memo_zoo.train.regions import landmark_measurer

        measure, detector_kind = landmark_measurer()
    boxes: dict[str, list[Box]] = {}
    fallbacks: dict[str, int] = {}
    for region in measured:
        found, missing = [], 0
        for clip in progress(range(len(samples.clips)), desc=f"loss region {region.name}: landmarks", unit="clip"):
            box = _cached_box(samples, clip, region, measure, detector_kind or "custom")
            if box is None:
                missing += 1
                box = tuple(region.box)
            found.append(box)
        boxes[region.name], fallbacks[region.name] = found, missing
    return ClipRegions(boxes, fallbacks)


def _cached_box(samples: ClipFrames, clip: int, region: LossRegion,
                measure: Callable[[np.ndarray, LossRegion], Box | None], detector_kind: str) -> Box | None:
    path = region_file(samples.clip_directory(clip), region, detector_kind)
    try:
        stored = json.loads(path.read_text())
        box = stored["box"]
        return None if box is None else tuple(float(v) for v in box)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or damaged: measured again
    box = measure(samples.clip_frames(clip), region)
    text = json.dumps({"box": None if box is None else [float(v) for v in box]})
    try:
        write_atomically(path, lambda temp: Path(temp).write_text(text))
    except OSError:
        pass  # a read-only cache measures again next run
    return box
