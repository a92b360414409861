"""Test-wide settings: offline, quiet, deterministic, and never writing into the checkout."""

from __future__ import annotations

import os

# Set before anything imports transformers/diffusers/mlflow.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
os.environ["MEMO_ZOO_PROGRESS"] = "0"
os.environ.pop("MEMO_ZOO_TRACKING_URI", None)
os.environ.pop("MEMO_ZOO_DISABLE_PLUGINS", None)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("memo_zoo", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("memo_zoo")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def registry():
    """The registry of the installed plugins (built-ins + whatever the test env has)."""
    from memo_zoo.plugin.manager import load_registry

    return load_registry(disabled=())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory, so default MLflow stores land in tmp, not the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def one_thread():
    """Tiny nets run faster on one intra-op thread than on two shared cores, and steadier
    (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module that wants it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
