"""Running the installed ``memo-zoo`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def memo_zoo(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "memo_zoo", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
