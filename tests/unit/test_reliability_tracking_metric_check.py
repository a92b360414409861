"""The experiment task loads every metric's weights before it trains anything (issue 16): a broken
weight file fails the run in seconds, naming the metric and the file, with nothing trained or
generated; a missing file still only skips its metric; the check leaves the random state alone."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import memo_zoo.train.loop
from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from memo_zoo.seeding import seed_everything
from memo_zoo_eval.metrics.background import BackgroundMetric


class Trained(Exception):
    """Raised by the stand-in trainer: the task got as far as training."""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # One store for the module: creating a sqlite schema costs seconds.
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture
def trainer_calls(monkeypatch):
    """Replaces the trainer: records the random numbers it would start from, then stops the task."""
    calls: list[tuple[float, float, float]] = []

    class StandInTrainer:
        def __init__(self, *args, **kwargs):
            calls.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
            raise Trained

    monkeypatch.setattr(memo_zoo.train.loop, "Trainer", StandInTrainer)
    return calls


def experiment(tmp_path, registry, store, metrics: str):
    path = tmp_path / "experiment.yaml"
    path.write_text(
        "name: check\nseed: 7\n"
        f"task: {{kind: experiment, train: {{steps: 10}}, out_dir: '{tmp_path / 'experiments'}'}}\n"
        "model: {temporal: {kind: linear_memory}, audio_fusion: {kind: multimodal_attention}}\n"
        "data: {dataset: {kind: talking_world}}\n"
        f"metrics: {metrics}\n"
        f"tracking: {{uri: '{store}', experiment: metric-check}}\n")
    return load_recipe(path, registry)


def garbage(path):
    path.write_bytes(b"not a network at all\x00\x01" * 50)
    return path


def truncated_state_dict(path):
    torch.save({"fc.weight": torch.zeros(1008, 64), "conv.weight": torch.zeros(64, 64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


BROKEN = {
    "sync": ("sync", "syncnet_v2.model", garbage),
    "fid": ("fid", "pt_inception.pth", truncated_state_dict),
    "fvd": ("fvd", "i3d_torchscript.pt", garbage),
    "world_fd": ("world_fd", "measurer.safetensors", garbage),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_weight_file_fails_before_training(tmp_path, workdir, registry, store, trainer_calls, case):
    kind, file_name, write = BROKEN[case]
    broken = write(tmp_path / file_name)
    field = "measurer" if kind == "world_fd" else "weights"
    loaded = experiment(tmp_path, registry, store, f"[{{kind: background}}, {{kind: {kind}, {field}: '{broken}'}}]")
    started: list[str] = []
    with pytest.raises(MemoZooError) as error:
        run_recipe(loaded, registry, workdir=tmp_path, on_start=started.append)
    message = str(error.value)
    assert f"metric {kind}:" in message and str(broken) in message
    assert trainer_calls == [], "the task trained before checking its metrics"
    assert not (tmp_path / "experiments").exists(), "nothing may be trained or generated"
    assert started == [], "checked in the task's preflight: no MLflow run is created"


def test_a_broken_file_in_the_last_sweep_variant_fails_before_the_first_trains(tmp_path, workdir, registry, store,
                                                                              trainer_calls):
    broken = garbage(tmp_path / "syncnet_v2.model")
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: check-sweep\nseed: 7\n"
        f"task: {{kind: experiment, train: {{steps: 10}}, out_dir: '{tmp_path / 'experiments'}'}}\n"
        "model: {temporal: {kind: linear_memory}, audio_fusion: {kind: multimodal_attention}}\n"
        "data: {dataset: {kind: talking_world}}\n"
        "metrics: [{kind: background}]\n"
        f"sweep: {{plain: {{}}, with_sync: {{metrics: [{{kind: sync, weights: '{broken}'}}]}}}}\n"
        f"tracking: {{uri: '{store}', experiment: metric-check}}\n")
    started: list[str] = []
    with pytest.raises(MemoZooError, match="metric sync:"):
        run_recipe(load_recipe(path, registry), registry, workdir=tmp_path, on_start=started.append)
    assert trainer_calls == [] and started == []


def test_a_missing_weight_file_still_only_skips_its_metric(tmp_path, workdir, registry, store, trainer_calls):
    loaded = experiment(tmp_path, registry, store, f"[{{kind: sync, weights: '{tmp_path / 'absent.model'}'}}]")
    with pytest.raises(Trained):
        run_recipe(loaded, registry, workdir=tmp_path)
    assert len(trainer_calls) == 1


def test_loading_the_metrics_leaves_the_random_state_as_seeded(tmp_path, workdir, registry, store, trainer_calls,
                                                               monkeypatch):
    def prepare_that_reseeds(self):
        # As a world measurer's training does (torch.manual_seed), and a network's initialisation draws.
        torch.manual_seed(123)
        np.random.seed(123)
        random.seed(123)
        torch.rand(5)

    monkeypatch.setattr(BackgroundMetric, "prepare", prepare_that_reseeds)
    loaded = experiment(tmp_path, registry, store, "[{kind: background}]")
    with pytest.raises(Trained):
        run_recipe(loaded, registry, workdir=tmp_path)
    seed_everything(7)
    assert trainer_calls == [(random.random(), float(np.random.rand()), float(torch.rand(1)))]
