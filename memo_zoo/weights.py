"""Finding pretrained weights on local disk; memo-zoo never downloads them.

A component's weights option is either a path or a bare name. A path (absolute, or containing a
separator) is used as given; a bare name is looked up in ``MEMO_ZOO_WEIGHTS_DIR``. Either way,
a missing file raises ``MissingWeightsError`` saying what is missing, where it was looked for,
and how to provide it.
"""

from __future__ import annotations

from pathlib import Path

from memo_zoo.errors import MissingWeightsError
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
