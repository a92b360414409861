"""Training faults of issue 16, each reproduced as a user meets it: a real signal to a real
``memo-zoo train`` process (one rank or two), a killed run, damaged or crafted checkpoint files.

Nothing may be lost (every rank reaches one common exit checkpoint), nothing left wrong in MLflow
(no run RUNNING for ever) and nothing run from a file (checkpoints load with weights_only).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from memo_zoo.train.checkpoint import (CorruptCheckpointError, file_digest, list_checkpoints, load_pt, read_state,
                                       verify_checkpoint)
from memo_zoo.train.out_dir import RUN_FILE, OutDirLock
from tests.e2e.test_train_resume import train_registry, world, write_recipe  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def cache(monkeypatch, world):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(world / "cache"))


def _client(world: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{world / 'mlflow.db'}")


def _start_train(workdir: Path, recipe: Path, *args: str) -> subprocess.Popen:
    """``memo-zoo train`` in its own session, so that a signal to its process group is the
    terminal's Ctrl-C to it and nothing else."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "memo_zoo", "train", str(recipe), *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_steps(client: MlflowClient, experiment: str, steps: int, process: subprocess.Popen,
                    timeout: float = 240.0) -> str:
    """The run id once its logged loss reaches ``steps`` (the ranks are past set-up, mid-training)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            for run in client.search_runs([found.experiment_id]):
                history = client.get_metric_history(run.info.run_id, "loss")
                if history and max(m.step for m in history) >= steps:
                    return run.info.run_id
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"training did not reach step {steps} in {timeout} s: {process.communicate()}")


def _training_at(workdir: Path, world: Path, name: str, steps: int, checkpoint_every: int,
                 *args: str) -> tuple[subprocess.Popen, MlflowClient, str]:
    """A ``memo-zoo train`` into out_dir ``name`` (experiment ``name``) that has logged ``steps``
    steps: (process, client, run id)."""
    recipe = write_recipe(workdir, world, steps=500, checkpoint_every=checkpoint_every)
    process = _start_train(workdir, recipe, f"task.out_dir={name}", f"tracking.experiment={name}", *args)
    client = _client(world)
    return process, client, _wait_for_steps(client, name, steps, process)


def _finish(process: subprocess.Popen, timeout: float = 240.0) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


@pytest.mark.parametrize("how, code", [("sigterm-launcher", 143), ("ctrl-c-group", 130)])
def test_a_stopped_two_process_training_saves_its_last_step_and_closes_failed(workdir, world, how, code):
    """Issue 16.1: SIGTERM to the launcher (SLURM, Kubernetes) or Ctrl-C to its process group: both
    ranks stop after the same step, one complete checkpoint of that step is written, the launcher
    waits for them and exits 143 / 130, and the MLflow run ends FAILED."""
    process, client, run_id = _training_at(workdir, world, f"stop-{how}", 2, 1000, "--num-processes", "2")
    if how == "sigterm-launcher":
        os.kill(process.pid, signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)
    returncode, err = _finish(process)
    assert returncode == code, err
    assert "stopping after this step" in err
    out = workdir / f"stop-{how}"
    checkpoints = list_checkpoints(out)
    assert len(checkpoints) == 1, err
    step, path = checkpoints[0]
    state = verify_checkpoint(path)  # whole: every file matches its recorded digest
    logged = max(m.step for m in client.get_metric_history(run_id, "loss"))
    assert state.step == step == logged >= 2  # nothing trained was lost
    assert state.world_size == 2 and sorted(r["rank"] for r in state.ranks) == [0, 1]
    assert len({r["fingerprint"] for r in state.ranks}) == 1  # a common checkpoint, not rank 0's alone
    assert not list(out.glob(".tmp-*"))
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == ("Terminated" if code == 143 else "KeyboardInterrupt")


def test_a_terminated_single_process_training_exits_143_with_its_checkpoint(workdir, world):
    process, client, run_id = _training_at(workdir, world, "term-one", 1, 1000)
    process.send_signal(signal.SIGTERM)
    returncode, err = _finish(process)
    assert returncode == 143, err
    [(step, path)] = list_checkpoints(workdir / "term-one")
    assert verify_checkpoint(path).step == step >= 1
    assert client.get_run(run_id).info.status == "FAILED"


def test_resume_after_sigkill_closes_the_killed_run_and_links_the_new_one(workdir, world):
    """Issue 16.8: a SIGKILLed training cannot close its MLflow run; the resume closes it KILLED."""
    process, client, killed = _training_at(workdir, world, "killed", 3, 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert client.get_run(killed).info.status == "RUNNING"  # the fault: nobody closed it
    assert json.loads((workdir / "killed" / RUN_FILE).read_text())["run_id"] == killed
    newest = list_checkpoints(workdir / "killed")[-1][0]

    registry = train_registry()
    loaded = load_recipe(workdir / "train.yaml", registry, ["task.out_dir=killed", "tracking.experiment=killed",
                                            "task.resume=true", f"task.steps={newest + 1}"])
    outcome = run_recipe(loaded, registry)
    old = client.get_run(killed)
    assert old.info.status == "KILLED"
    assert old.data.tags["memo_zoo.train.closed_by"] == outcome.run_id
    new = client.get_run(outcome.run_id)
    assert new.info.status == "FINISHED"
    assert new.data.tags["memo_zoo.train.closed_stale_runs"] == killed
    assert new.data.tags["memo_zoo.train.resumed_from_run"] == killed
    assert json.loads((workdir / "killed" / RUN_FILE).read_text())["run_id"] == outcome.run_id


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, world):
    """A finished 4-step run with checkpoints at steps 2 and 4, trained once per module."""
    folder = tmp_path_factory.mktemp("trained")
    registry = train_registry()
    recipe = write_recipe(folder, world, steps=4, checkpoint_every=2)
    os.environ["MEMO_ZOO_CACHE_DIR"] = str(world / "cache")
    run_recipe(load_recipe(recipe, registry, [f"task.out_dir={folder / 'out'}", "tracking.experiment=faults"]),
               registry, workdir=folder)
    assert [s for s, _ in list_checkpoints(folder / "out")] == [2, 4]
    return folder, recipe, registry


@pytest.fixture
def trained(trained_once, workdir):
    """A copy of that run's out_dir (``out``) and a function that loads its recipe with overrides."""
    folder, recipe, registry = trained_once
    shutil.copytree(folder / "out", workdir / "out")

    def load(*overrides: str):
        return load_recipe(recipe, registry, ["task.out_dir=out", "tracking.experiment=faults", *overrides])

    return workdir / "out", load, registry


def test_resume_skips_a_truncated_newest_checkpoint_and_says_why(trained):
    """Issue 16.5: a truncated optimizer.pt in the newest checkpoint; --resume falls back to the
    previous intact one, warns which it skipped and why, and sets the damaged one aside."""
    out, load, registry = trained
    optimizer = out / "checkpoint-00000004" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    with pytest.raises(CorruptCheckpointError, match="optimizer.pt"):
        verify_checkpoint(out / "checkpoint-00000004")
    with pytest.warns(UserWarning, match=r"skips checkpoint-00000004.*optimizer\.pt.*truncated"):
        outcome = run_recipe(load("task.resume=true", "task.steps=5"), registry)
    client = MlflowClient(outcome.tracking_uri)
    assert client.get_run(outcome.run_id).data.tags["memo_zoo.train.resumed_from"].endswith("checkpoint-00000002")
    assert sorted(m.step for m in client.get_metric_history(outcome.run_id, "loss")) == [3, 4, 5]
    assert (out / "damaged-checkpoint-00000004" / "DAMAGED.txt").read_text().startswith(str(optimizer))
    assert [s for s, _ in list_checkpoints(out)] == [2, 4, 5]  # step 4 saved anew, whole
    verify_checkpoint(out / "checkpoint-00000004")


def test_resume_with_no_intact_checkpoint_names_every_damaged_file(trained):
    out, load, registry = trained
    (out / "checkpoint-00000004" / "model" / "memo_net.safetensors").write_bytes(b"\0" * 10)
    (out / "checkpoint-00000002" / "rng.pt").unlink()
    with pytest.raises(MemoZooError, match="no checkpoint .* is intact") as error:
        run_recipe(load("task.resume=true", "task.steps=6"), registry)
    message = str(error.value)
    assert "memo_net.safetensors" in message and "rng.pt: missing" in message


class _Payload:
    """A pickle that creates a file when it is loaded: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(checkpoint: Path, name: str, payload: object) -> None:
    """Replace a file of a checkpoint and update trainer.json's record of it, as someone handing
    over a crafted folder would: the digests do not protect against its author."""
    torch.save(payload, checkpoint / name)
    document = json.loads((checkpoint / "trainer.json").read_text())
    document["files"][name] = {"size": (checkpoint / name).stat().st_size, "sha256": file_digest(checkpoint / name)}
    (checkpoint / "trainer.json").write_text(json.dumps(document))


def test_a_crafted_pickle_in_a_checkpoint_is_refused_and_never_runs(trained, tmp_path):
    """Issue 16.10: optimizer.pt carrying code is refused with a message on --resume; nothing runs."""
    out, load, registry = trained
    marker = tmp_path / "pwned"
    for step, path in list_checkpoints(out):
        _plant(path, "optimizer.pt", {"state": {}, "param_groups": [], "evil": _Payload(marker)})
    with pytest.raises(CorruptCheckpointError, match=r"optimizer\.pt: refused.*(system|posix)"):
        load_pt(out / "checkpoint-00000004" / "optimizer.pt")
    with pytest.raises(MemoZooError, match=r"optimizer\.pt: refused"):
        run_recipe(load("task.resume=true", "task.steps=6"), registry)
    assert not marker.exists()


def test_the_checkpoint_state_files_hold_only_safely_loadable_types(trained):
    out, _, _ = trained
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
        torch.load(out / "checkpoint-00000004" / name, weights_only=True)  # no allow-list needed


def test_no_code_loads_pickles_unsafely():
    """Issue 16.10: every torch.load in the project is weights_only=True (or safetensors)."""
    offenders = []
    for folder in ("memo_zoo", "plugins", "evaluation", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "weights_only=" + "False" in text or "pickle." + "load(" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_nothing_to_resume_creates_no_mlflow_run(workdir, world):
    """Issue 16.9: the resume checks come before the MLflow run, so a mistake leaves no FAILED run."""
    registry = train_registry()
    recipe = write_recipe(workdir, world, steps=4)
    loaded = load_recipe(recipe, registry, ["task.out_dir=empty", "task.resume=true",
                                            "tracking.experiment=nothing-to-resume"])
    with pytest.raises(MemoZooError, match="nothing to resume"):
        run_recipe(loaded, registry)
    assert _client(world).get_experiment_by_name("nothing-to-resume") is None


def test_already_at_the_last_step_creates_no_mlflow_run(trained):
    out, load, registry = trained
    client = MlflowClient(f"sqlite:///{Path(load().recipe.tracking.uri[len('sqlite:///'):])}")
    before = len(client.search_runs([client.get_experiment_by_name("faults").experiment_id]))
    with pytest.raises(MemoZooError, match="at step 4 of task.steps=4"):
        run_recipe(load("task.resume=true"), registry)
    assert len(client.search_runs([client.get_experiment_by_name("faults").experiment_id])) == before


def test_two_trainings_cannot_write_into_one_out_dir(trained):
    out, load, registry = trained
    with OutDirLock(out):
        with pytest.raises(MemoZooError, match="in use by another training"):
            run_recipe(load("task.resume=true", "task.steps=6"), registry)
    outcome = run_recipe(load("task.resume=true", "task.steps=6"), registry)  # released: it trains
    assert read_state(list_checkpoints(out)[-1][1]).step == 6 and outcome.run_id


def test_resume_with_another_architecture_is_refused_with_the_differing_fields(trained):
    """Issue 16.2: parameter names match across gamma values; the saved config does not."""
    out, load, registry = trained
    with pytest.raises(MemoZooError, match=r"model\.temporal\.gamma: recipe 0\.5, checkpoint 0\.9"):
        run_recipe(load("task.resume=true", "task.steps=6", "model.temporal.gamma=0.5"), registry)
    assert [s for s, _ in list_checkpoints(out)] == [2, 4]  # nothing mixed into the out_dir


def test_init_weights_from_another_architecture_is_refused_unless_only_the_spatial_part_is_taken(trained):
    out, load, registry = trained
    other = ["task.out_dir=fine", f"task.init_weights={out / 'checkpoint-00000004'}", "task.steps=1",
             "model.temporal={kind: self_attention, heads: 2}"]
    with pytest.raises(MemoZooError, match=r"model\.temporal\.kind: recipe 'self_attention', checkpoint "
                                           r"'linear_memory'"):
        run_recipe(load(*other), registry)
    # Stage 1's weights for a variant with another temporal module: that is what scope spatial is for.
    outcome = run_recipe(load(*other, "task.init_weights_scope=spatial"), registry)
    assert outcome.run_id


def test_an_rng_file_of_the_earlier_format_still_restores(tmp_path):
    """Checkpoints written before the safe format hold numpy's RNG tuple: only its exact numpy types
    are allowed beyond torch's safe set, so they resume as before."""
    import random

    import numpy as np

    from memo_zoo.train.checkpoint import restore_rng_states

    np.random.seed(11)
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
               tmp_path / "rng.pt")
    expected = np.random.rand(3)
    np.random.seed(0)
    restore_rng_states(load_pt(tmp_path / "rng.pt"))
    assert np.array_equal(np.random.rand(3), expected)
