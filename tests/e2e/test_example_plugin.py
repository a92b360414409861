"""The worked third-party plugin (docs/examples/memo-zoo-causal-conv), really pip-installed.

It is installed with pip into a folder of its own that the subprocesses put on PYTHONPATH, so
the test environment the other tests see is not changed. Its components must then show up in
`memo-zoo ls`, be accepted by a recipe and be built by `memo-zoo run`, with no change to memo-zoo;
its own tests, which check it with the contract kit (memo_zoo.testing), must pass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.e2e.cli_helpers import memo_zoo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def example(tmp_path_factory, repo_root):
    """A copy of the example package: setuptools writes build/ and *.egg-info beside the sources it
    builds, and its tests are run from there, so nothing is written into the checkout."""
    package = tmp_path_factory.mktemp("src") / "memo-zoo-causal-conv"
    shutil.copytree(repo_root / "docs" / "examples" / "memo-zoo-causal-conv", package)
    return package


@pytest.fixture(scope="module")
def installed(tmp_path_factory, example):
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(example)],
        capture_output=True, text=True, timeout=300, cwd=build)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(target.glob("memo_zoo_causal_conv-*.dist-info"))
    return {"PYTHONPATH": str(target)}


def test_installed_plugin_appears_in_ls(tmp_path, installed):
    out = memo_zoo("ls", cwd=tmp_path, env=installed)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["causal_conv", "causal_conv", "(memo-zoo-causal-conv)"] in [row[:3] for row in rows]
    detail = memo_zoo("ls", "temporal", cwd=tmp_path, env=installed)
    assert "kernel_size: int = 3" in detail.stdout


def test_recipe_using_the_plugin_validates_and_runs(tmp_path, installed, repo_root):
    recipe = repo_root / "docs" / "examples" / "memo-zoo-causal-conv" / "recipe.yaml"
    assert memo_zoo("validate", str(recipe), cwd=tmp_path, env=installed).returncode == 0
    out = memo_zoo("run", str(recipe), "model.temporal.kernel_size=5", cwd=tmp_path, env=installed)
    assert out.returncode == 0, out.stderr
    check = subprocess.run(
        [sys.executable, "-c", (
            "import json, sys\n"
            "from mlflow import MlflowClient\n"
            "c = MlflowClient(tracking_uri='sqlite:///mlflow.db')\n"
            "run = c.search_runs(['1'])[0]\n"
            "print(json.dumps({'k': run.data.params['model.temporal.kernel_size'],"
            " 'p': run.data.metrics['parameters.model.temporal']}))\n")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert '"k": "5"' in check.stdout


def test_without_the_plugin_the_recipe_is_rejected_naming_the_kind(tmp_path, repo_root):
    recipe = repo_root / "docs" / "examples" / "memo-zoo-causal-conv" / "recipe.yaml"
    out = memo_zoo("validate", str(recipe), cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown kind 'causal_conv'" in out.stderr


def test_the_plugin_follows_the_temporal_contract(installed, example):
    """The package's tests (tests/test_contract.py) call memo_zoo.testing on the installed plugin,
    as a plugin author's CI would: the temporal contract in one call, then streaming."""
    out = subprocess.run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
                         cwd=example, env={**os.environ, **installed}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"\b\d+ passed\b", out.stdout) and "skipped" not in out.stdout, out.stdout
