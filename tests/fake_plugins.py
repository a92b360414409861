"""Writing small installed-looking plugin distributions (dist-info + module) for tests."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

_counter = itertools.count()


def write_plugin_dist(root: Path, entry_name: str, source: str, dist_name: str | None = None) -> str:
    """Create module + ``*.dist-info`` with a ``memo_zoo`` entry point under ``root``.

    Returns the module name (unique per call, so that sys.modules never hands back an old one).
    """
    module = f"fake_memo_zoo_plugin_{next(_counter)}_{entry_name}"
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    dist = dist_name or f"fake-{entry_name.replace('_', '-')}"
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[memo_zoo]\n{entry_name} = {module}\n")
    return module


def forget_modules(prefix: str = "fake_memo_zoo_plugin_") -> None:
    for name in [n for n in sys.modules if n.startswith(prefix)]:
        del sys.modules[name]
