"""The 5-point face alignment of insightface's ArcFace crop (released code, method.md §10).

The recogniser sees a square crop warped so that the detector's five landmarks (eyes, nose tip,
mouth corners) land on the standard ArcFace template. The warp is the least-squares similarity
transform (rotation, uniform scale, translation; Umeyama 1991, the estimator of scikit-image's
``SimilarityTransform`` that insightface calls), applied with OpenCV's bilinear ``warpAffine``
and a black border, as insightface's ``norm_crop`` does.
"""

from __future__ import annotations

import numpy as np

from memo_zoo.errors import MemoZooError

# The five landmarks of the standard 112x112 ArcFace crop (left eye, right eye, nose tip, left and
# right mouth corners), x then y, in pixels.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix ``M`` of the similarity transform minimising ``sum |M [p; 1] - q|^2`` over
    the point pairs (Umeyama's closed form, reflections excluded). ``source``, ``target``: (N, 2).

    The sums are taken in the points' own precision, as scikit-image does: the release aligns
    float32 landmarks onto the float32 template, and float64 sums would move the crop by ~1e-5 px.
    """
    dtype = np.result_type(np.asarray(source).dtype, np.asarray(target).dtype, np.float32)
    src = np.asarray(source, dtype=dtype)
    dst = np.asarray(target, dtype=dtype)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"similarity_transform needs two (N >= 2, 2) point sets of one shape, got {src.shape} "
                         f"and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    rank = np.linalg.matrix_rank(covariance)
    if rank == 0:
        raise MemoZooError("face alignment: the landmarks are all one point; the detector's landmarks are unusable")
    # A reflection would fit mirrored landmarks better than any rotation; Umeyama forbids it by
    # flipping the weakest axis. For a rank-1 covariance the determinant is 0 and the product of
    # U's and V's determinants decides instead.
    if rank == 1:
        if np.linalg.det(u) * np.linalg.det(vt) < 0:
            sign[1] = -1
    elif np.linalg.det(covariance) < 0:
        sign[1] = -1
    rotation = u @ np.diag(sign) @ vt
    # Umeyama's eqs. 41-42, evaluated in scikit-image's order so that the float32 rounding agrees.
    scale = 1.0 / src_c.var(axis=0).sum() * (singular @ sign)
    matrix = np.empty((2, 3))
    matrix[:, 2] = dst_mean - scale * (rotation @ src_mean)
    matrix[:, :2] = rotation * scale
    return matrix


def arcface_template(size: int) -> np.ndarray:
    """The template for a ``size`` crop: scaled from 112 (sizes divisible by 112), or from 128 with
    insightface's 8-pixel x shift of the 128 crops (sizes divisible by 128)."""
    if size % 112 == 0:
        return ARCFACE_TEMPLATE * (size / 112.0)
    if size % 128 == 0:
        ratio = size / 128.0
        template = ARCFACE_TEMPLATE * ratio
        template[:, 0] += 8.0 * ratio
        return template
    raise MemoZooError(f"face alignment: the recogniser's input side {size} is neither a multiple of 112 nor of 128 "
                       "(insightface's ArcFace crops)")


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """(size, size, C) crop of ``image`` (H, W, C uint8) with its 5 ``landmarks`` (5, 2) on the
    ArcFace template: bilinear, black outside the image."""
    import cv2

    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (5, 2):
        raise ValueError(f"align_face needs the 5 (x, y) landmarks, got shape {landmarks.shape}")
    matrix = similarity_transform(landmarks, arcface_template(size))
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
