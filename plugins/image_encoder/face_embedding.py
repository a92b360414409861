"""``image_encoder: {kind: face_embedding}``: a frozen face-recognition network's 512-d embedding
(spec §10). The network and its options are the core's (``memo_zoo.perception.face_embedding``),
shared with the ``identity`` metric; this module is the component's factory."""

from __future__ import annotations

from memo_zoo.perception.face_embedding import FaceEmbeddingConfig, FaceEmbeddingEncoder

__all__ = ["FaceEmbeddingConfig", "FaceEmbeddingEncoder", "build"]


def build(config: FaceEmbeddingConfig) -> FaceEmbeddingEncoder:
    return FaceEmbeddingEncoder(config)
