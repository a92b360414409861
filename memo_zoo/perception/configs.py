"""Options of the perception pieces that components expose in recipes: the face square of the face
metrics (``FaceOptions``), SyncNet's reading of a video (``SyncNetOptions``), the face-recognition
image encoder (``FaceEmbeddingConfig``) and the MDX vocal separator (``VocalSeparatorConfig``: the
vocal_separation stage and generation). Pydantic only, no torch, OpenCV or scipy.

The metrics and the image encoder register these through their plugins without importing the
perception code, so ``memo-zoo ls``, ``validate`` and ``schema`` import none of it (issue 17.8).
``face_boxes``, ``syncnet`` and ``face_embedding`` import them from here, so their old import paths
stay.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

# OpenCV's frontal-face Haar cascade file (memo_zoo.perception.faces), the face_crop stage's default.
HAAR_FILE = "haarcascade_frontalface_default.xml"


class FaceOptions(BaseModel):
    """Face-crop options shared by the face metrics (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    face_detector: Literal["none", "lbp", "yunet", "dlib_hog", "dlib_cnn", "best"] = Field(
        "none", description="none: frames are face crops already, take the centre square; lbp: scikit-image's "
                            "LBP cascade (offline); yunet: cv2.FaceDetectorYN with detector_model; dlib_hog: "
                            "dlib's HOG detector (offline, no model file); dlib_cnn: dlib's MMOD CNN detector "
                            "(offline from the face-recognition-models package; slow on CPU); best: dlib_cnn, "
                            "else dlib_hog, else lbp, whichever is installed")
    detector_model: Optional[str] = Field(None, description="yunet: the YuNet ONNX file; dlib_cnn: another "
                                                            "mmod_human_face_detector.dat than the "
                                                            "face-recognition-models copy (a path, or a name "
                                                            "under MEMO_ZOO_WEIGHTS_DIR)")
    detector_max_side: int = Field(320, ge=32, description="dlib_cnn: frames are shrunk to this longer side "
                                                           "before detection (its cost grows with the pixels)")
    crop: float = Field(1.0, gt=0, le=1, description="face_detector none: side of the centre square, as a "
                                                     "fraction of the frame's shorter side")
    sample_every: int = Field(5, ge=1, description="with a detector: detect on every k-th frame")

    @model_validator(mode="after")
    def _check_detector(self):
        if self.face_detector == "yunet" and not self.detector_model:
            raise ValueError("face_detector yunet needs detector_model: the YuNet ONNX file")
        return self


class SyncNetOptions(FaceOptions):
    """How SyncNet reads a video: the face crop, the offsets searched, the channel order and the
    batch size.

    ``crop_mode`` picks the face crop (``memo_zoo.perception.syncnet``):
    - ``tracked``: the reference pipeline's (syncnet_python ``run_pipeline.py``): the detector runs
      on every frame, faces are linked into tracks and each frame gets its own crop that follows
      the head (``memo_zoo.perception.face_track``). It needs a detector, so it is the default only
      when ``face_detector`` is set: with the published evaluation's crops, the figures are the
      published ones' kind.
    - ``fixed``: one square per video (``FaceOptions``: the median detector box, or the centre square
      without a detector). The default without a detector, where there is nothing to track:
      memo-zoo's own videos are face crops already. A video with no kept track falls back to it.
    """

    max_offset: int = Field(15, ge=0, le=50, description="shifts searched: -max_offset..max_offset video frames")
    bgr: bool = Field(True, description="feed BGR channel order, as the reference (OpenCV-read frames)")
    batch_size: int = Field(16, ge=1, description="windows per forward pass")
    crop_mode: Optional[Literal["tracked", "fixed"]] = Field(
        None, description="tracked: detect on every frame, track the face and crop each frame around it, as the "
                          "reference pipeline (needs face_detector); fixed: one square per video (median detector "
                          "box, or the centre square); null: tracked with a face_detector, else fixed")
    crop_scale: float = Field(0.4, ge=0, description="tracked: crop margin; the crop is 2 s (1 + crop_scale) wide "
                                                     "for a box of half-side s (reference: 0.40)")
    min_track: int = Field(100, ge=0, description="tracked: keep a track only with more than this many detections "
                                                  "(reference: 100 frames, 4 s at 25 fps)")
    num_failed_det: int = Field(25, ge=0, description="tracked: frames a face may go undetected and still continue "
                                                      "its track (reference: 25)")
    min_face_size: float = Field(100, ge=0, description="tracked: keep a track only when its mean box width or "
                                                        "height exceeds this many pixels (reference: 100)")

    @model_validator(mode="after")
    def _resolve_crop_mode(self):
        if self.crop_mode is None:
            self.crop_mode = "tracked" if self.face_detector != "none" else "fixed"
        elif self.crop_mode == "tracked" and self.face_detector == "none":
            raise ValueError("crop_mode tracked needs a face_detector (lbp, yunet or dlib_hog) to track the face")
        return self


class DlibFaceEmbeddingConfig(BaseModel):
    """dlib's 128-d face-recognition embedding of an aligned chip (``face_embedding.DlibFaceEmbedder``):
    the model files default to the face-recognition-models pip package's copies."""

    model_config = ConfigDict(extra="forbid")

    recognition_model: Optional[str] = Field(None, description="dlib_face_recognition_resnet_model_v1.dat: a path "
                                                               "or a name under MEMO_ZOO_WEIGHTS_DIR; null: the "
                                                               "face-recognition-models copy")
    landmark_model: Optional[str] = Field(None, description="shape_predictor_5_face_landmarks.dat (the chip "
                                                            "alignment's points); null: the package's copy")
    chip_padding: float = Field(0.25, ge=0, le=1, description="margin around the face in the chip, as a fraction "
                                                              "of its size (dlib's recipe: 0.25)")
    jitter: int = Field(0, ge=0, le=100, description="embed this many randomly jittered copies of each chip too "
                                                     "and average (dlib's num_jitters; slower, a little steadier)")


class FaceEmbeddingConfig(BaseModel):
    """Frozen face-recognition network from a serialised graph (released code's image condition)."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(..., description="face-recognition network as a TorchScript file or a .pt2 torch.export "
                                          "program: a path, or a name under MEMO_ZOO_WEIGHTS_DIR")
    embed_dim: int = Field(512, ge=1, description="width of the network's embedding (§10: 512)")
    input_size: int = Field(112, ge=8, description="side of the square crop the network expects (ArcFace: 112)")
    crop: float = Field(1.0, gt=0, le=1, description="centre square kept, as a fraction of the shorter side")
    bgr: bool = Field(False, description="feed channels as BGR (for networks trained on OpenCV-ordered images)")


RELEASE_VOCAL_SEPARATOR = "misc/vocal_separator/Kim_Vocal_2.onnx"


class VocalSeparatorConfig(BaseModel):
    """MDX-Net vocal separation with ONNX Runtime: STFT, the net on spectrogram chunks, iSTFT."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(
        ..., description="the MDX-Net ONNX file (Kim_Vocal_2.onnx): a path or a name under MEMO_ZOO_WEIGHTS_DIR, or "
                         "a MEMO release folder / hub id such as memoavatar/memo, read offline from the Hugging Face "
                         f"cache ({RELEASE_VOCAL_SEPARATOR} inside it)")
    n_fft: int = Field(7680, ge=16, description="STFT size (audio-separator's mdx_n_fft_scale_set; Kim_Vocal_2: 7680)")
    hop_length: int = Field(1024, ge=1, description="STFT hop in samples (audio-separator default: 1024)")
    dim_f: Optional[int] = Field(None, ge=1, description="frequency bins the net takes (None: the model's input "
                                                         "shape; Kim_Vocal_2: 3072)")
    dim_t: Optional[int] = Field(None, ge=2, description="STFT frames per chunk, the segment size (None: the model's "
                                                         "input shape; Kim_Vocal_2: 256)")
    compensate: float = Field(1.009, gt=0, description="gain applied to the separated stem (audio-separator's "
                                                       "model table; Kim_Vocal_2: 1.009)")
    overlap: float = Field(0.25, ge=0, lt=1, description="overlap of consecutive chunks, Hann-weighted "
                                                         "(audio-separator default: 0.25)")
    sample_rate: int = Field(44100, ge=8000, description="rate the net runs at (audio-separator: 44100 Hz)")
    normalization_threshold: float = Field(0.9, gt=0, le=1, description="peak the mix and the stem are scaled "
                                                                        "down to when louder (audio-separator: 0.9)")
    amplification_threshold: float = Field(0.6, ge=0, le=1, description="peak the mix and the stem are scaled up "
                                                                       "to when quieter, 0 = never (audio-separator "
                                                                       "0.24.1: 0.6)")
    denoise: bool = Field(False, description="also run the net on the negated spectrogram and average "
                                             "(audio-separator's enable_denoise; off in the release)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where ONNX Runtime runs the net: auto follows MEMO_ZOO_DEVICE; cuda needs onnxruntime-gpu")
    threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads on the CPU (0: its default)")

    @model_validator(mode="after")
    def _fits(self) -> "VocalSeparatorConfig":
        if self.dim_f is not None and self.dim_f > self.n_fft // 2 + 1:
            raise ValueError(f"dim_f {self.dim_f} exceeds the n_fft // 2 + 1 = {self.n_fft // 2 + 1} bins of n_fft "
                             f"{self.n_fft}")
        if self.amplification_threshold > self.normalization_threshold:
            raise ValueError(f"amplification_threshold {self.amplification_threshold} is above "
                             f"normalization_threshold {self.normalization_threshold}")
        if self.dim_t is not None and self.hop_length * (self.dim_t - 1) <= self.n_fft:
            raise ValueError(f"a chunk of hop_length x (dim_t - 1) = {self.hop_length * (self.dim_t - 1)} samples "
                             f"must be longer than n_fft {self.n_fft}: half an FFT is trimmed from each end")
        return self
