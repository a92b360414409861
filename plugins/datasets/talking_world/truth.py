"""Reading talking_world's per-clip ground truth (``data/truth/<clip_id>.npz``) for metrics and tests.

The generator (:mod:`.world`) writes one compressed ``.npz`` per clip next to MEMO's layout. This
module turns it into a typed :class:`WorldTruth`, checks that every per-frame array has one row
per video frame, and offers the few derived views metrics need (labels by name, times). Metrics of
MEMO's claims (spec §0) read it: lip sync against ``mouth_open`` / ``mouth_area`` / ``energy``,
expression against ``emotion`` (spec E4 indices) / ``intensity``, pose and blinks for motion
realism.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from memo_zoo.emotion import PAPER_LABELS

# Per-frame arrays, one row per video frame, as the generator writes them.
FRAME_FIELDS: tuple[str, ...] = (
    "mouth_open", "mouth_area", "mouth_width", "mouth_round", "viseme", "emotion", "intensity",
    "yaw", "pitch", "roll", "blink", "gaze_x", "gaze_y", "energy")


@dataclass(frozen=True)
class WorldTruth:
    """Ground truth of one talking_world clip.

    Per frame ``i`` (shown during ``[i / fps, (i + 1) / fps)``; shape ``(frames,)``):

    mouth_open, mouth_width, mouth_round: the speech-driven mouth (phonemes -> visemes with
        co-articulation, in [0, 1]; the renderer's FaceState scales). Lip-sync truth from speech
        alone: emotions that drop the jaw do not change it.
    mouth_area: the inner-mouth (opening) area as rendered, i.e. speech AND expression, divided by
        the squared inter-ocular distance of the frontal rest face.
    viseme: index into ``visemes.VISEMES`` being articulated at the frame's midpoint.
    emotion: spec E4 label index (``emotion_labels`` order); intensity: expression strength 0..1
        (it fades to 0 and back around an emotion change).
    yaw, pitch, roll: head pose, radians; blink: lid closure 0..1; gaze_x, gaze_y: iris offset.
    energy: RMS of the clip's 16 kHz audio over the frame's interval.

    Per clip: ``clip_id``, ``identity`` (index of the synthetic identity, -1 on the photo tier),
    ``speaker``, ``voice``, ``text`` (the words spoken in the clip), ``fps``, ``size``, ``tier``
    (``cartoon`` | ``photo``), ``sample_rate``; phoneme and word timings in seconds.
    """

    mouth_open: np.ndarray
    mouth_area: np.ndarray
    mouth_width: np.ndarray
    mouth_round: np.ndarray
    viseme: np.ndarray
    emotion: np.ndarray
    intensity: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    blink: np.ndarray
    gaze_x: np.ndarray
    gaze_y: np.ndarray
    energy: np.ndarray
    clip_id: str
    identity: int
    speaker: str
    voice: str
    text: str
    fps: float
    size: int
    tier: str
    sample_rate: int
    emotion_labels: tuple[str, ...]
    phoneme_symbol: np.ndarray
    phoneme_start: np.ndarray
    phoneme_end: np.ndarray
    word_text: np.ndarray
    word_start: np.ndarray
    word_end: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.mouth_open)

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def times(self) -> np.ndarray:
        """Frame midpoints in seconds (where the tracks were sampled)."""
        return (np.arange(self.frames) + 0.5) / self.fps

    @property
    def pose(self) -> np.ndarray:
        """(frames, 3) yaw, pitch, roll."""
        return np.stack([self.yaw, self.pitch, self.roll], axis=1)

    def emotion_names(self) -> list[str]:
        """The per-frame emotion as label strings."""
        return [self.emotion_labels[int(i)] for i in self.emotion]

    def dominant_emotion(self) -> str:
        """The most frequent frame label (spec E5's clip label; ties go to the earlier label)."""
        return self.emotion_labels[int(np.argmax(np.bincount(self.emotion.astype(np.int64),
                                                             minlength=len(self.emotion_labels))))]


def load_truth(path: str | Path) -> WorldTruth:
    """Read a truth file; ``ValueError`` names the file when a field is missing or mis-sized."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        missing = [f.name for f in fields(WorldTruth) if f.name not in data.files]
        if missing:
            raise ValueError(f"{path}: not a talking_world truth file, missing {', '.join(missing)}")
        values = {name: data[name] for name in data.files if name in {f.name for f in fields(WorldTruth)}}
    frames = len(values["mouth_open"])
    wrong = [f"{name} {values[name].shape}" for name in FRAME_FIELDS if values[name].shape != (frames,)]
    if wrong:
        raise ValueError(f"{path}: per-frame arrays must all have {frames} rows; got {', '.join(wrong)}")
    for name in ("clip_id", "speaker", "voice", "text", "tier"):
        values[name] = str(values[name])
    for name in ("identity", "size", "sample_rate"):
        values[name] = int(values[name])
    values["fps"] = float(values["fps"])
    values["emotion_labels"] = tuple(str(x) for x in values["emotion_labels"])
    if values["emotion_labels"] != PAPER_LABELS:
        raise ValueError(f"{path}: emotion labels {values['emotion_labels']} are not spec E4's {PAPER_LABELS}")
    return WorldTruth(**values)
