"""Finding pretrained weights on local disk; memo-zoo never downloads them.

A component's weights option is either a path or a bare name. A path (absolute, or containing a
separator) is used as given; a bare name is looked up in ``MEMO_ZOO_WEIGHTS_DIR``. Either way,
a missing file raises ``MissingWeightsError`` saying what is missing, where it was looked for,
and how to provide it.
"""

from __future__ import annotations

from pathlib import Path

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.settings import get_settings


def weights_path(reference: str | Path, what: str) -> Path:
    """Where ``reference`` points (module docstring), whether or not anything is there yet: also
    where a job that trains weights for a recipe (``task: train_vae``) must write them."""
    text = str(reference)
    if Path(text).is_absolute() or "/" in text or text.startswith("."):
        return Path(text).expanduser()
    root = get_settings().weights_dir
    if root is None:
        raise MissingWeightsError(
            f"{what}: {text!r} is a name, but MEMO_ZOO_WEIGHTS_DIR is not set; set it to the folder that "
            f"holds {text!r}, or give a path instead")
    return root / text


def resolve_weights(reference: str | Path, what: str, expect: tuple[str, ...] = ()) -> Path:
    """The local path of ``reference``; ``expect`` lists files a weights folder must contain.

    ``what`` names the weights in the error (e.g. "SD1.5 VAE (AutoencoderKL folder)").
    """
    path = weights_path(reference, what)
    if not path.exists():
        raise MissingWeightsError(f"{what}: not found at {path}; memo-zoo does not download weights, "
                                  f"put them there (or point the recipe at where they are)")
    missing = [name for name in expect if not (path / name).exists()]
    if missing:
        raise MissingWeightsError(f"{what}: {path} lacks {', '.join(missing)}")
    return path


def check_readable(path: str | Path, what: str) -> None:
    """Raise ``MemoZooError`` naming the damaged file when a weights file or folder has a JSON file
    that does not parse or a ``.safetensors`` file whose header or length is wrong (truncated by an
    interrupted copy or download). The loaders (diffusers, transformers, safetensors) report these
    as bare tracebacks, often without the file's name; this check reads only headers, so it is
    cheap. ``path`` is a file or a folder (the files directly in it: the folder the library loads)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for file in files:
        if file.suffix == ".json":
            _check_json(file, what)
        elif file.suffix == ".safetensors":
            _check_safetensors(file, what)


def _check_json(file: Path, what: str) -> None:
    import json

    try:
        json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MemoZooError(f"{what}: {file} cannot be read as JSON ({error}); the file is damaged") from None


def _check_safetensors(file: Path, what: str) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="numpy"):
            pass  # opening parses the header and checks the file is as long as the header says
    except (SafetensorError, OSError, ValueError) as error:
        raise MemoZooError(f"{what}: {file} cannot be read as safetensors ({error}); the file is damaged or "
                           "truncated") from None


def loading_error(what: str, path: Path, error: BaseException) -> MemoZooError:
    """The ``MemoZooError`` for a library that failed to load weights ``check_readable`` passed
    (e.g. a pickled ``.bin`` that is cut short, a config with a wrong field)."""
    return MemoZooError(f"{what}: {path} cannot be loaded ({type(error).__name__}: {error})")
