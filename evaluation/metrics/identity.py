"""``metrics: [{kind: identity}]`` (``weights: ...`` for ArcFace): identity preservation and drift (spec §8, Table 1).

Per video: the cosine similarity between the face-recognition embedding of the reference image
and that of each generated frame (every ``frame_stride``-th), averaged over the frames
(``identity``, the paper's Identity); the same mean over the first and over the last
``drift_fraction`` of the frames (``identity_first``, ``identity_last``) and their difference
(``identity_drift`` = first - last: positive when the face drifts away from the reference over a
long video, the failure MEMO's memory is meant to prevent); and, with ``time_bins`` > 0, the mean
over each of that many equal stretches of the video (``identity_bin0``..) for drift-over-time plots.
The run's figures are the means over videos.

The reference image is the video's ``reference_image``; without one, the ground-truth video's
``reference_image``, else its first frame.

Embedding (``weights``): the paper's is an ArcFace-style face-recognition network, given as a
self-contained TorchScript file (or a .pt2 torch.export program), loaded by the ``face_embedding``
image encoder's loader: input (B, 3, ``input_size``, ``input_size``) RGB (BGR with ``bgr``)
normalised to [-1, 1] as (pixel - 127.5) / 127.5, the insightface convention, output
(B, ``embed_dim``) L2-normalised. There is no canonical file of it, so without ``weights`` the
metric uses real pretrained weights that a pip package ships: dlib's 128-d ResNet embedding
(``memo_zoo.perception.face_embedding.DlibFaceEmbedder``, files from face-recognition-models),
L2-normalised. The two are on different scales (dlib's cosine of two different people is about
0.8-0.9, ArcFace's about 0), so the run records which one ran: the summary figure
``identity_dlib_embedding`` is 1 for dlib's (``IdentityMetric.embedding``: ``dlib_resnet_128``),
0 for ArcFace (``arcface``); compare identity figures only between runs where it is equal.

The face crop (``memo_zoo.perception.face_boxes``): the centre square of each frame, or a
detector's fixed box x ``box_scale``. dlib's embedding aligns every face (its recipe: the 5-point
shape predictor inside the face box, then ``dlib.get_face_chip``). ArcFace takes the square as it
is, unless ``align``: then dlib's 68-point landmarks inside the face box place each face onto
ArcFace's 112 x 112 five-point template (``memo_zoo.perception.landmarks.align_face``), as
insightface crops its training faces. Without a detector the landmarks are sought in the centre
square, which suits memo-zoo's face-crop videos; give ``face_detector`` (``best``) for others.
"""

from __future__ import annotations

import numpy as np
import torch

from memo_zoo.errors import MemoZooError
from memo_zoo.perception.face_boxes import FaceLocator, crop_resize
from memo_zoo.eval.protocol import (MetricResult, PerVideoMerge, VideoSample, check_new_video, mean_of,
                                    reference_image_of, resolve_device)
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_eval.metrics.configs import IdentityConfig


def identity_figures(similarity: np.ndarray, drift_fraction: float, time_bins: int) -> dict[str, float]:
    """Per-video figures (module docstring) from the per-frame cosine similarities (T,)."""
    count = len(similarity)
    edge = max(1, int(round(count * drift_fraction)))
    first, last = float(similarity[:edge].mean()), float(similarity[-edge:].mean())
    figures = {"identity": float(similarity.mean()), "identity_first": first, "identity_last": last,
               "identity_drift": first - last}
    bounds = np.linspace(0, count, time_bins + 1)
    for b in range(time_bins):
        # frame t belongs to the bin its time t / count falls in; empty bins (short videos) are NaN
        chunk = similarity[int(np.ceil(bounds[b])):int(np.ceil(bounds[b + 1]))]
        figures[f"identity_bin{b}"] = float(chunk.mean()) if len(chunk) else float("nan")
    return figures


class IdentityMetric(PerVideoMerge):
    """Shardable over workers: its state is its per-video rows (``PerVideoMerge``)."""

    name = "identity"

    def __init__(self, config: IdentityConfig):
        self.config = config
        self.encoder = None
        self.dlib_embedder = None
        self.aligner = None
        self.device = torch.device("cpu")
        self.locator: FaceLocator | None = None
        self.per_video: dict[str, dict[str, float]] = {}

    @property
    def embedding(self) -> str:
        """Which embedding measures: ``arcface`` (a ``weights`` file) or ``dlib_resnet_128``."""
        return "arcface" if self.config.weights else "dlib_resnet_128"

    def prepare(self) -> None:
        if self.encoder is not None or self.dlib_embedder is not None:
            return
        c = self.config
        self.device = resolve_device(c.device)
        if c.weights:
            from memo_zoo.perception.face_embedding import FaceEmbeddingConfig, FaceEmbeddingEncoder

            encoder = FaceEmbeddingEncoder(FaceEmbeddingConfig(weights=c.weights, embed_dim=c.embed_dim,
                                                               input_size=c.input_size, crop=1.0, bgr=c.bgr))
            if c.align:
                from memo_zoo.perception.landmarks import LandmarkPredictor

                self.aligner = LandmarkPredictor(68)
            self.encoder = encoder.to(self.device)
        else:
            from memo_zoo.perception.face_embedding import DlibFaceEmbedder

            self.dlib_embedder = DlibFaceEmbedder(c.dlib)
        self.locator = FaceLocator(c)  # a detector's model file is loaded here too, not at build

    @torch.no_grad()
    def embed(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (T, D) unit-norm float64 embeddings of the faces (module docstring)."""
        if self.dlib_embedder is not None:
            box, _ = self.locator.face_box(frames)
            return torch.from_numpy(self.dlib_embedder(frames, box))
        if self.aligner is not None:
            from memo_zoo.perception.landmarks import align_frames

            box, _ = self.locator.face_box(frames)
            frames = align_frames(self.aligner, frames, box, self.config.input_size)
            square = (0, 0, self.config.input_size)
        else:
            square = self.locator.square(frames, self.config.box_scale)[:3]
        out = []
        for start in range(0, len(frames), self.config.batch_size):
            crops = crop_resize(frames[start:start + self.config.batch_size], square, self.config.input_size,
                                self.device)
            out.append(self.encoder.encode(crops / 127.5 - 1.0).double().cpu())
        return torch.cat(out)

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> None:
        self.prepare()
        check_new_video(self.name, self.per_video, generated.id)
        image = reference_image_of(self.name, generated, reference)
        anchor = self.embed(image[None])[0]
        frames = self.embed(generated.frames[::self.config.frame_stride])
        similarity = (frames @ anchor).numpy()  # both unit norm: the cosine
        self.per_video[generated.id] = identity_figures(similarity, self.config.drift_fraction,
                                                        self.config.time_bins)

    def compute(self) -> MetricResult:
        if not self.per_video:
            raise MemoZooError("identity: no video measured")
        keys = next(iter(self.per_video.values())).keys()
        summary = {key: mean_of(self.per_video, key) for key in keys}
        # a flag, not a string: MetricResult holds floats (it goes to MLflow as a metric)
        summary["identity_dlib_embedding"] = float(self.embedding == "dlib_resnet_128")
        return MetricResult(per_video={k: dict(v) for k, v in self.per_video.items()}, summary=summary)

    def reset(self) -> None:
        self.per_video = {}


def build(config: IdentityConfig) -> IdentityMetric:
    return IdentityMetric(config)
