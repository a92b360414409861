"""Writing a file so that readers see the old file or the whole new one, never a part.

``write_atomically(path, write)`` calls ``write(temp_name)`` on a temporary file in the same folder
(so the rename stays on one file system) and renames it over ``path``; on any error, Ctrl-C
included, the temporary file is removed and ``path`` is left as it was. Checkpoints, caches,
reports and records use it so that an interrupted job never leaves a half-written file under the
name a resumed job trusts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomically(path: str | Path, write: Callable[[str], None]) -> Path:
    """``write(temp)`` then rename ``temp`` to ``path`` (module docstring); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    return write_atomically(path, lambda temp: Path(temp).write_bytes(data))
