"""ArcFace face recognition with ONNX Runtime, as insightface runs it for the released code (§10).

The release's face embedding is insightface's ``ArcFaceONNX`` output for the aligned crop
(``glintr100.onnx``, 512-d): the crop as RGB, ``(pixel - mean) / std``, (1, 3, S, S); the single
output, flattened, NOT normalised (the release reads ``face["embedding"]``, not
``normed_embedding``).

``mean`` and ``std`` follow insightface's rule when not given: a model converted from MXNet
carries its own normalisation as ``Sub`` / ``Mul`` nodes among its first 8 nodes and is fed raw
pixels (mean 0, std 1); any other model is fed ``(pixel - 127.5) / 127.5``. Reading the node
names needs the ``onnx`` package; with neither it nor explicit values the model cannot be fed
correctly, which is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memo_zoo.errors import MemoZooError
from memo_zoo.perception.onnx_models import open_session, static_dim
from memo_zoo_plugins.image_encoder.face_align import align_face

ARCFACE_MEAN = 127.5
ARCFACE_STD = 127.5


def insightface_normalisation(path: Path) -> tuple[float, float]:
    """(mean, std) by insightface's rule (module docstring)."""
    try:
        import onnx
    except ImportError:
        raise MemoZooError(f"ArcFace recogniser {path}: telling how the model wants its input normalised needs the "
                           "onnx package (pip install onnx), or set recognizer_mean and recognizer_std") from None
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as error:  # noqa: BLE001 - protobuf's decode errors have no common public base
        raise MemoZooError(f"ArcFace recogniser: {path} cannot be read as an ONNX model ({error})") from None
    names = [node.name for node in graph.node[:8]]
    has_sub = any(name.startswith(("Sub", "_minus")) for name in names)
    has_mul = any(name.startswith(("Mul", "_mul")) for name in names)
    return (0.0, 1.0) if has_sub and has_mul else (ARCFACE_MEAN, ARCFACE_STD)


class ArcFaceRecognizer:
    """An ArcFace ONNX model fed aligned crops (module docstring)."""

    def __init__(self, path: Path, mean: float | None = None, std: float | None = None, device: str = "cpu",
                 threads: int = 0):
        self.path = path
        self.session = open_session(path, "ArcFace face recogniser", device, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(outputs) != 1:
            raise MemoZooError(f"ArcFace face recogniser: {path} has {len(outputs)} outputs, expected 1 (the "
                               "embedding). Is this the recogniser (glintr100.onnx / w600k_r50.onnx)?")
        shape = inputs[0].shape
        height, width = (static_dim(shape[2]), static_dim(shape[3])) if len(shape) == 4 else (None, None)
        if not height or height != width or height < 112 or height % 16:
            raise MemoZooError(f"ArcFace face recogniser: {path} takes input of shape {shape}; a recogniser takes a "
                               "fixed square crop (batch, 3, S, S), S >= 112 and a multiple of 16. Is this the "
                               "recogniser (glintr100.onnx / w600k_r50.onnx)?")
        self.size = height
        self.input_name = inputs[0].name
        if mean is None or std is None:
            auto_mean, auto_std = insightface_normalisation(path)
            mean = auto_mean if mean is None else mean
            std = auto_std if std is None else std
        self.mean, self.std = float(mean), float(std)
        width_out = static_dim(outputs[0].shape[-1]) if outputs[0].shape else None
        self.embed_dim = width_out or int(self.embed(np.zeros((self.size, self.size, 3), np.uint8)).shape[0])

    def embed(self, crop: np.ndarray) -> np.ndarray:
        """The flattened float32 embedding of one aligned (S, S, 3) uint8 RGB crop."""
        blob = ((crop.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def embed_face(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The embedding of the face whose 5 landmarks in ``image`` (H, W, 3 uint8 RGB) are given."""
        return self.embed(align_face(image, landmarks, self.size))
