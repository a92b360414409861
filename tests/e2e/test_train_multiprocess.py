"""``memo-zoo train --num-processes 2`` on CPU (gloo DDP): disjoint data shards per rank, gradients
averaged (identical replicas after every step), one MLflow run written by rank 0 only."""

from __future__ import annotations

import argparse

from mlflow import MlflowClient

from memo_zoo.cli.app import build_parser, core_commands
from memo_zoo.cli.launch import TrainSpec, launch
from memo_zoo.cli.train import TRAIN
from memo_zoo.train.checkpoint import list_checkpoints, read_state
from tests.e2e.test_train_resume import missing_plugins, world, write_recipe  # noqa: F401 (fixture)


def test_two_gloo_processes_train_disjoint_shards_into_identical_replicas(workdir, world, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(world / "cache"))
    recipe = write_recipe(workdir, world, steps=2, checkpoint_every=1)
    code = launch(TrainSpec(recipe=recipe, overrides=("task.out_dir=ddp", "tracking.experiment=ddp"), workdir=workdir,
                            extra_plugins=missing_plugins()), num_processes=2)
    assert code == 0
    out = workdir / "ddp"
    assert [s for s, _ in list_checkpoints(out)] == [1, 2]
    for step, path in list_checkpoints(out):
        state = read_state(path)
        assert state.world_size == 2 and state.samples_seen == 4 * step
        ranks = {r["rank"]: r for r in state.ranks}
        assert sorted(ranks) == [0, 1]
        # Each rank trained on its own samples ...
        first, second = set(ranks[0]["last_indices"]), set(ranks[1]["last_indices"])
        assert len(first) == len(second) == 2 and not first & second
        # ... and DDP averaged the gradients: the replicas are identical after the step.
        assert ranks[0]["fingerprint"] == ranks[1]["fingerprint"]
    # One epoch = 8 samples / (2 ranks x batch 2) = 2 steps: together the ranks saw every sample once.
    seen = [set(r["last_indices"]) for _, p in list_checkpoints(out) for r in read_state(p).ranks]
    assert set().union(*seen) == set(range(8))

    client = MlflowClient(f"sqlite:///{world / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert len(runs) == 1  # rank 1 never talked to MLflow
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["memo_zoo.train.processes"] == "2"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == [1, 2]
    assert run.data.tags["memo_zoo.train.global_batch"] == "4"


def test_the_train_command_parses_processes_resume_and_overrides():
    assert TRAIN in core_commands()
    parser = build_parser([TRAIN])
    args = parser.parse_args(["train", "r.yaml", "task.steps=5", "--num-processes", "2", "--resume"])
    assert isinstance(args, argparse.Namespace)
    assert (str(args.recipe), args.overrides, args.num_processes, args.resume) == ("r.yaml", ["task.steps=5"], 2, True)
