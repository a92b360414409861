"""Reading golden reference data (``tests/data/golden``, or the folder ``MEMO_ZOO_GOLDEN_DIR`` names).

A golden folder holds data produced by another project's released code (see its README). The
parity tests read every dimension, call sequence and tolerance from it, never from constants in
the test, so the same tests run unchanged against any golden folder of the same format.

Which folder: ``MEMO_ZOO_GOLDEN_DIR`` when set (it must exist: a typo is an error, not a skip),
else the copy vendored in ``tests/data/golden`` (a plain clone has no ``../shared``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

VENDORED = Path(__file__).resolve().parent / "data" / "golden"

# The README's "Recommended tolerance" line, e.g. "**Recommended tolerance:** `atol=1e-5, rtol=1e-5`".
_TOLERANCE = re.compile(r"Recommended tolerance:?\**:?\s*`?atol\s*=\s*([0-9.eE+-]+),\s*rtol\s*=\s*([0-9.eE+-]+)")


def golden_root() -> Path:
    """The folder that holds the golden sets (``memo_released/``, ``syncnet_python/``, ...)."""
    named = os.environ.get("MEMO_ZOO_GOLDEN_DIR")
    if named:
        root = Path(named).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"MEMO_ZOO_GOLDEN_DIR={named!r} is not a folder")
        return root
    return VENDORED


@dataclass(frozen=True)
class GoldenSet:
    """One golden set, e.g. ``memo_released``: its folder, cases and stated tolerance."""

    root: Path

    @classmethod
    def named(cls, name: str) -> "GoldenSet":
        folder = golden_root() / name
        if not folder.is_dir():
            raise FileNotFoundError(f"golden set {name!r} not found under {golden_root()}")
        return cls(folder)

    @cached_property
    def readme(self) -> str:
        return (self.root / "README.md").read_text()

    def tolerance(self, case: "GoldenCase | None" = None) -> tuple[float, float]:
        """(atol, rtol): the case JSON's own ``tolerance`` when it has one, else the README's
        recommended tolerance."""
        if case is not None and isinstance(case.meta.get("tolerance"), dict):
            tol = case.meta["tolerance"]
            return float(tol["atol"]), float(tol["rtol"])
        found = _TOLERANCE.search(self.readme)
        if found is None:
            raise ValueError(f"{self.root / 'README.md'}: no 'Recommended tolerance: atol=..., rtol=...' line")
        return float(found.group(1)), float(found.group(2))

    def case(self, name: str) -> "GoldenCase":
        return GoldenCase(self.root / "cases" / name)

    def path(self, relative: str) -> Path:
        return self.root / relative


@dataclass(frozen=True)
class GoldenCase:
    """A case: ``<name>.json`` (calls, flags, tensor table) and ``<name>.safetensors``."""

    stem: Path

    @cached_property
    def meta(self) -> dict[str, Any]:
        return json.loads(self.stem.with_suffix(".json").read_text())

    @cached_property
    def tensors(self) -> dict[str, Any]:
        from safetensors.torch import load_file

        return load_file(str(self.stem.with_suffix(".safetensors")))

    def __getitem__(self, name: str):
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"{self.stem.with_suffix('.safetensors')}: no tensor {name!r}") from None

    def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.tensors if n.startswith(prefix))
