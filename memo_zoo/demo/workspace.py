"""The demo's own folder: every upload and every output lives in it, and nothing else is served.

``Workspace.create()`` makes a fresh folder under the system's temporary folder, readable by its
owner only (0700: on a shared machine another user must not read a visitor's portrait), with:

- ``gradio/``: Gradio's upload and output cache (``GRADIO_TEMP_DIR``). Gradio serves a file only
  from its cache, the ``allowed_paths`` given to ``launch`` (none here) and its static folders, so
  pointing the cache here is what keeps every served path inside this folder.
- ``examples/``: Gradio's examples cache (``GRADIO_EXAMPLES_CACHE``), which it would otherwise put
  under ``./.gradio`` in the working directory and serve from there.
- ``jobs/<id>/``: one folder per generation, named by the server (a random id), never by anything
  the request says; the video and the timeline are written there and handed to Gradio, which
  copies them into its cache.

``environment()`` is what must be set before Gradio builds its app; ``blocked_paths()`` are
folders refused even if a future Gradio served more by default (this package's source, the
working directory with the recipes and checkpoints). ``remove()`` deletes the whole folder; the
server calls it when it stops and ``atexit`` once more for an exit that skips the ``finally``.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import memo_zoo

PREFIX = "memo-zoo-demo-"


@dataclass
class Workspace:
    root: Path
    _removed: bool = field(default=False, repr=False)

    @classmethod
    def create(cls) -> "Workspace":
        # mkdtemp: a new folder, mode 0700, with an unguessable name (no symlink planted ahead).
        root = Path(tempfile.mkdtemp(prefix=PREFIX)).resolve()
        workspace = cls(root)
        for sub in (workspace.uploads, workspace.examples, workspace.jobs):
            sub.mkdir(mode=0o700)
        atexit.register(workspace.remove)
        return workspace

    @property
    def uploads(self) -> Path:
        return self.root / "gradio"

    @property
    def examples(self) -> Path:
        return self.root / "examples"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def environment(self) -> dict[str, str]:
        """Gradio's settings that must hold before its app is built (read from the environment)."""
        return {"GRADIO_TEMP_DIR": str(self.uploads), "GRADIO_EXAMPLES_CACHE": str(self.examples),
                # A local demo has no business calling home; nothing is sent anywhere.
                "GRADIO_ANALYTICS_ENABLED": "False"}

    def apply_environment(self) -> None:
        os.environ.update(self.environment())

    def blocked_paths(self, workdir: Path) -> list[str]:
        """Folders never served, whatever Gradio's defaults become: memo-zoo's own source and the
        working directory (recipes, checkpoints, MLflow store), unless the workspace is inside it."""
        blocked = [Path(memo_zoo.__file__).resolve().parent]
        workdir = workdir.resolve()
        if not self.root.is_relative_to(workdir):
            blocked.append(workdir)
        return [str(path) for path in blocked]

    def new_job(self) -> Path:
        """A fresh folder for one generation. Earlier jobs' folders are removed first: jobs run one
        at a time, and Gradio copied the previous job's outputs into its cache when it returned."""
        for old in self.jobs.iterdir():
            shutil.rmtree(old, ignore_errors=True)
        folder = self.jobs / uuid.uuid4().hex
        folder.mkdir(mode=0o700)
        return folder

    def public(self, message: str) -> str:
        """``message`` without this server's folder names: an upload is named by its file name, as
        the visitor knows it (``/tmp/memo-zoo-demo-x/gradio/<hash>/speech.wav`` -> ``speech.wav``)."""
        message = re.sub(re.escape(str(self.uploads)) + r"/[^/\s]+/", "", message)
        message = re.sub(re.escape(str(self.jobs)) + r"/[^/\s]+/", "", message)
        return message.replace(str(self.root), "<demo folder>")

    def remove(self) -> None:
        if not self._removed:
            shutil.rmtree(self.root, ignore_errors=True)
            self._removed = True
