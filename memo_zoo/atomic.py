"""Writing a file so that readers see the old file or the whole new one, never a part.

``write_atomically(path, write)`` calls ``write(temp_name)`` on a temporary file in the same folder
(so the rename stays on one file system) and renames it over ``path``; on any error, Ctrl-C
included, the temporary file is removed and ``path`` is left as it was. Checkpoints, caches,
reports and records use it so that an interrupted job never leaves a half-written file under the
name a resumed job trusts.

Permissions: the result has the mode a plain ``open(path, "w")`` would give it. A new file gets
``0o666 & ~umask`` (usually 0644), not ``mkstemp``'s private 0600, so videos and weights are as
readable as every other file the job writes (by a web server, a colleague, a container running as
another user). A file that is replaced keeps its own mode, as when it is overwritten in place.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (/proc: no window in
    which another thread would create files with umask 0), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: str | Path) -> int:
    """The mode ``open(path, "w")`` would leave ``path`` with: its current one when it exists,
    else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def temporary_beside(path: str | Path, suffix: str = ".tmp") -> str:
    """A new empty temporary file ``.<name>.XXXX<suffix>`` in ``path``'s folder with the mode
    ``path`` will have (module docstring); the caller renames it over ``path`` or removes it."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(handle, new_file_mode(path))
    finally:
        os.close(handle)
    return temp


def write_atomically(path: str | Path, write: Callable[[str], None]) -> Path:
    """``write(temp)`` then rename ``temp`` to ``path`` (module docstring); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temporary_beside(path)
    try:
        write(temp)
        # Again after writing: some writers (safetensors) replace the file they are given by their
        # own, with their own mode.
        os.chmod(temp, new_file_mode(path))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    return write_atomically(path, lambda temp: Path(temp).write_bytes(data))
