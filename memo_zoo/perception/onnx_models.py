"""The released code's ONNX input models on local disk: finding them and opening them (method.md §10).

The release conditions on two networks it runs through ONNX Runtime, not torch: insightface's
face analysis models (``misc/face_analysis/models/``: the SCRFD detector and the ArcFace
recogniser, the ``insightface`` image encoder) and the MDX-Net vocal separator
(``misc/vocal_separator/Kim_Vocal_2.onnx``, generation's optional vocal separation). Both the
image-encoder plugin and the core's vocal separation use this module, so it lives in the core.

A model reference (:func:`locate`) is a path, a name under ``MEMO_ZOO_WEIGHTS_DIR``, or a released
MEMO folder or hub id (``memoavatar/memo``, read offline from the local Hugging Face cache by
``memo_zoo.model.released.folder.resolve_release``); given a release, the model is looked up at its
``misc/...`` path inside it. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.weights import weights_path

INSTALL_HINT = "pip install onnxruntime (or onnxruntime-gpu for CUDA)"


def locate(reference: str, what: str, release_subpath: str) -> Path:
    """The local path ``reference`` names (module docstring).

    A local path or weights-dir name that exists is taken as is, unless it is a release folder,
    i.e. it holds ``release_subpath``: then that is returned. Anything else that looks like a
    hub id is resolved as a release (``MissingWeightsError`` naming the cache and the command that
    fetches it when it is not cached), and ``release_subpath`` inside it is returned.
    """
    text = str(reference)
    path = weights_path(text, what)
    if not path.exists():
        if not _looks_like_hub_id(text):
            raise MissingWeightsError(f"{what}: not found at {path}; memo-zoo does not download models, put them "
                                      "there (or point the recipe at where they are)")
        from memo_zoo.model.released.folder import resolve_release

        try:
            path = resolve_release(text)
        except MissingWeightsError as error:
            raise MissingWeightsError(f"{what}: {text!r} is neither a local file or folder ({path} does not exist) "
                                      f"nor a MEMO release found offline: {error}") from None
        except MemoZooError as error:
            raise MemoZooError(f"{what}: {error}") from None
        inside = path / release_subpath
        if not inside.exists():
            raise MissingWeightsError(f"{what}: the MEMO release {text!r} at {path} has no {release_subpath}; "
                                      "fetch the release's misc/ files too, or give the path of the model")
        return inside
    inside = path / release_subpath
    return inside if path.is_dir() and inside.exists() else path


def _looks_like_hub_id(text: str) -> bool:
    """``owner/name`` or ``owner/name@revision``: one slash, relative, no leading dot."""
    name = text.split("@", 1)[0]
    return name.count("/") == 1 and not text.startswith((".", "/", "~")) and all(name.split("/"))


def execution_providers(device: str) -> list[str]:
    """ONNX Runtime providers for a component's ``device`` option (``auto`` follows
    ``memo_zoo.devices.resolve_device``): CUDA first when asked for and available, CPU always."""
    import onnxruntime

    from memo_zoo.devices import resolve_device

    wants_cuda = resolve_device(device).type == "cuda" if device == "auto" else device.startswith("cuda")
    available = onnxruntime.get_available_providers()
    if wants_cuda and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def open_session(path: Path, what: str, device: str = "cpu", threads: int = 0) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``path``; a missing onnxruntime, a missing file and a
    file ONNX Runtime cannot read are each a ``MemoZooError`` naming the model and the file.
    ``threads`` > 0 caps ONNX Runtime's intra-op threads (0: its default, all cores)."""
    try:
        import onnxruntime
    except ImportError:
        raise MemoZooError(f"{what} runs through ONNX Runtime, which is not installed: {INSTALL_HINT}") from None
    if not path.is_file():
        where = f"{path} is a folder" if path.is_dir() else f"no file at {path}"
        raise MissingWeightsError(f"{what}: {where}; memo-zoo does not download models, put the file there "
                                  "(or point the recipe at where it is)")
    options = onnxruntime.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=execution_providers(device))
    except Exception as error:  # noqa: BLE001 - ORT raises its own exception types (InvalidProtobuf, Fail, ...)
        raise MemoZooError(f"{what}: {path} cannot be opened by ONNX Runtime ({type(error).__name__}: {error}); "
                           "the file is damaged or not an ONNX model") from None


def static_dim(value: Any) -> int | None:
    """An ONNX Runtime shape entry as an int, None when it is symbolic ('None', 'batch', '?')."""
    return value if isinstance(value, int) and value > 0 else None
