"""The CLI starts without the heavy libraries (issue 17, item 8; docs/benchmarks.md, "CLI start-up").

Each command runs in a fresh ``python -X importtime -m memo_zoo`` process, whose stderr names every
module it imported. ``--help`` loads the plugins and their commands only. ``ls``, ``validate`` and
``schema`` also collect the components, but they only read their pydantic configs: the built-in
plugins register torch-free config modules and name their factories by lazy reference
(``memo_zoo.plugin.lazy``), so none of these commands imports torch, numpy, scipy, OpenCV, PyAV or
a model library. No timing is asserted: the module list is what regresses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

# Imported only when a component is built or a task runs.
MODEL_LIBRARIES = {"diffusers", "transformers", "mlflow", "accelerate", "timm", "torchvision", "funasr", "sklearn"}
HEAVY_LIBRARIES = MODEL_LIBRARIES | {"torch", "scipy", "numpy", "cv2", "av", "safetensors"}

_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \| +(\S+)\s*$")


def imported_packages(args: list[str], cwd) -> set[str]:
    """Top-level packages that ``memo-zoo ARGS`` imports, from its ``-X importtime`` report."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "memo_zoo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    names = [m.group(1) for m in map(_IMPORT_LINE.match, done.stderr.splitlines()) if m]
    assert "memo_zoo.cli.app" in names, "no -X importtime report on stderr"
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["train", "--help"]])
def test_help_imports_no_heavy_library(args, repo_root):
    assert imported_packages(args, repo_root) & HEAVY_LIBRARIES == set()


@pytest.mark.parametrize("args", [["ls"], ["ls", "temporal"], ["validate", "recipes/smoke.yaml"],
                                  ["validate", "recipes/ablate_memory.yaml"], ["schema"]])
def test_commands_that_build_nothing_import_no_heavy_library(args, repo_root):
    assert imported_packages(args, repo_root) & HEAVY_LIBRARIES == set()
