"""dlib's pretrained face models, read offline from the ``face-recognition-models`` pip package.

That package ships four files of dlib's model zoo (public, from dlib.net/files), which memo-zoo
uses without any download:

- ``mmod_human_face_detector.dat``: the MMOD CNN face detector (``dlib_cnn`` in ``faces``);
- ``shape_predictor_68_face_landmarks.dat``: the 68-point iBUG 300-W landmarks (``landmarks``);
- ``shape_predictor_5_face_landmarks.dat``: 5 points (two corners of each eye, the nose base),
  dlib's input to face-chip alignment;
- ``dlib_face_recognition_resnet_model_v1.dat``: the ResNet-29 face-recognition network, a 128-d
  embedding of a 150 px aligned chip (``face_embedding.DlibFaceEmbedder``).

The package is found with ``importlib.util.find_spec`` rather than imported: its ``__init__``
imports ``pkg_resources``, which current setuptools no longer has. Every loader also takes an
explicit path (a file, or a name under MEMO_ZOO_WEIGHTS_DIR) instead of the package's copy.
Loaded models are cached per (file) path: the 68-point predictor is 100 MB and takes a second.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.weights import resolve_weights

PACKAGE = "face_recognition_models"
PIP_NAME = "face-recognition-models"
CNN_DETECTOR = "mmod_human_face_detector.dat"
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"


def import_dlib(what: str) -> Any:
    """The ``dlib`` module, or an error naming the wheel to install for ``what``."""
    try:
        import dlib
    except ImportError:
        raise MemoZooError(f"{what} needs dlib: pip install dlib-bin (a prebuilt wheel) or dlib") from None
    return dlib


def package_models_dir() -> Path | None:
    """The ``models`` folder of the installed face-recognition-models package, or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(name: str, path: str | None = None) -> Path:
    """The file of dlib model ``name`` (one of the module's constants): ``path`` when given (a
    path, or a name under MEMO_ZOO_WEIGHTS_DIR), else the face-recognition-models package's copy."""
    if path:
        return resolve_weights(path, f"dlib model ({name})")
    folder = package_models_dir()
    if folder is None:
        raise MissingWeightsError(f"dlib model {name}: the pip package {PIP_NAME} is not installed "
                                  f"(pip install {PIP_NAME}), and no explicit path was given")
    found = folder / name
    if not found.is_file():
        raise MissingWeightsError(f"dlib model {name}: {found} is missing from the {PIP_NAME} package; "
                                  f"reinstall it (pip install --force-reinstall {PIP_NAME}) or give a path")
    return found


def dlib_installed() -> bool:
    """Whether the dlib module is installed (without importing it)."""
    return importlib.util.find_spec("dlib") is not None


def available(name: str) -> bool:
    """Whether dlib is installed and model ``name`` is in the face-recognition-models package."""
    if not dlib_installed():
        return False
    folder = package_models_dir()
    return folder is not None and (folder / name).is_file()


@lru_cache(maxsize=8)
def _load(kind: str, path: Path) -> Any:
    dlib = import_dlib(f"dlib model {path.name}")
    constructor = {"cnn": dlib.cnn_face_detection_model_v1, "shape": dlib.shape_predictor,
                   "recognition": dlib.face_recognition_model_v1}[kind]
    try:
        return constructor(str(path))
    except RuntimeError as error:  # dlib raises RuntimeError on a file of the wrong kind or a truncated one
        raise MemoZooError(f"dlib model {path}: cannot be loaded as a {kind} model ({error})") from None


def cnn_detector(path: str | None = None) -> Any:
    """dlib's MMOD CNN face detector (``dlib.cnn_face_detection_model_v1``), cached."""
    return _load("cnn", model_path(CNN_DETECTOR, path))


def shape_predictor(points: int, path: str | None = None) -> Any:
    """dlib's 68- or 5-point shape predictor (``dlib.shape_predictor``), cached."""
    if points not in (5, 68):
        raise MemoZooError(f"dlib shape predictor: points must be 5 or 68, got {points}")
    return _load("shape", model_path(LANDMARKS_68 if points == 68 else LANDMARKS_5, path))


def recognition_model(path: str | None = None) -> Any:
    """dlib's ResNet face-recognition network (``dlib.face_recognition_model_v1``), cached."""
    return _load("recognition", model_path(RECOGNITION, path))
