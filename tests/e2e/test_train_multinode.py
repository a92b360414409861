"""Training across processes and nodes through accelerate (issue 21 item 3), on CPU with gloo:

- a checkpoint resumes on another world size with the same loss curve: 2 processes x 1
  micro-batch per step and 1 process x 2 accumulated micro-batches train on the same global batch
  with the same draws (``memo_zoo.train.loop.BatchStream``), so the resumed run's losses equal an
  unbroken run's within 1e-5 (float summation order of the gradients is all that differs);
- ``memo-zoo train --config-file`` re-runs the command under ``accelerate launch`` (the shipped
  CPU gloo and DeepSpeed ZeRO-2 configs); a ZeRO-2 checkpoint (sharded AdamW state gathered into
  torch's layout) resumes in a plain one-process run;
- every shipped config file parses in accelerate and is checked against the recipe (FSDP and
  contradicting values refused with the file and field named).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient
from safetensors.torch import load_file

from memo_zoo.cli.launch import (AccelerateLaunch, TrainSpec, accelerate_command, check_accelerate_config, launch,
                                 launch_with_config, read_accelerate_config)
from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from memo_zoo.train.checkpoint import list_checkpoints, read_state
from memo_zoo.train.config import TrainConfig
from memo_zoo.train.loop import configure_deepspeed
from tests.e2e.test_train_resume import (loss_curve, missing_plugins, small_threads, train_registry,  # noqa: F401
                                         world, write_recipe)

LAUNCH = Path(__file__).resolve().parents[2] / "recipes" / "launch"
TOLERANCE = 1e-5  # same global batch and draws; only the order of the gradient sums differs


def _run_here(recipe: Path, *overrides: str):
    registry = train_registry()
    return run_recipe(load_recipe(recipe, registry, list(overrides)), registry)


def _curve(world: Path, experiment: str) -> dict[int, float]:
    """The loss by step over every run of an MLflow experiment (a run and its resumption)."""
    client = MlflowClient(f"sqlite:///{world / 'mlflow.db'}")
    curve: dict[int, float] = {}
    for run in client.search_runs([client.get_experiment_by_name(experiment).experiment_id]):
        curve.update(loss_curve(client, run.info.run_id))
    return curve


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model" / "memo_net.safetensors"))


def _assert_close_weights(a: Path, b: Path, atol: float) -> None:
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys()
    worst = max(float((first[k] - second[k]).abs().max()) for k in first)
    assert worst <= atol, worst


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_PROGRESS", "0")


def test_a_checkpoint_resumes_on_another_world_size_with_the_same_loss_curve(workdir, world):
    """2 processes -> 1 and 1 -> 2: the step counter, optimizer state and loss curve continue."""
    assert not missing_plugins(), "the rank processes load the installed entry points only"
    recipe = write_recipe(workdir, world, steps=4, checkpoint_every=2)
    # The unbroken reference: one process, 2 accumulated micro-batches of 2 (global batch 4).
    _run_here(recipe, "task.out_dir=ref", "task.grad_accumulation=2", "tracking.experiment=ref")
    reference = _curve(world, "ref")
    assert sorted(reference) == [1, 2, 3, 4]

    # 2 processes x 1 micro-batch (the CPU gloo config file), 2 steps ...
    code = launch_with_config(
        TrainSpec(recipe=recipe, overrides=("task.out_dir=two-one", "task.steps=2", "tracking.experiment=two-one"),
                  workdir=workdir),
        AccelerateLaunch(LAUNCH / "cpu_gloo.yaml"))
    assert code == 0
    state = read_state(workdir / "two-one" / "checkpoint-00000002")
    assert (state.world_size, state.grad_accumulation, state.samples_seen) == (2, 1, 8)
    # ... resumed on 1 process: refused unless the micro-batches per step stay 2 ...
    with pytest.raises(MemoZooError, match=r"task\.grad_accumulation=2"):
        _run_here(recipe, "task.out_dir=two-one", "task.resume=true", "tracking.experiment=two-one")
    _run_here(recipe, "task.out_dir=two-one", "task.resume=true", "task.grad_accumulation=2",
              "tracking.experiment=two-one")
    state = read_state(workdir / "two-one" / "checkpoint-00000004")
    assert (state.step, state.world_size, state.grad_accumulation, state.samples_seen) == (4, 1, 2, 16)

    # The reverse: 1 process x 2, then 2 processes x 1 (memo-zoo's own launcher).
    _run_here(recipe, "task.out_dir=one-two", "task.steps=2", "task.grad_accumulation=2",
              "tracking.experiment=one-two")
    code = launch(TrainSpec(recipe=recipe, overrides=("task.out_dir=one-two", "tracking.experiment=one-two"),
                            resume=True, workdir=workdir), num_processes=2)
    assert code == 0
    assert read_state(workdir / "one-two" / "checkpoint-00000004").world_size == 2

    for name in ("two-one", "one-two"):
        curve = _curve(world, name)
        assert sorted(curve) == [1, 2, 3, 4], name
        for step in (1, 2, 3, 4):
            assert curve[step] == pytest.approx(reference[step], abs=TOLERANCE), (name, step)
        _assert_close_weights(workdir / name / "checkpoint-00000004", workdir / "ref" / "checkpoint-00000004",
                              atol=TOLERANCE)


def test_a_zero2_run_on_two_cpu_processes_resumes_in_a_plain_run(workdir, world):
    """The shipped DeepSpeed ZeRO-2 config (DeepSpeed's CPU accelerator over gloo): its checkpoint is
    memo-zoo's format, with the sharded AdamW state gathered, and a plain one-process run goes on."""
    pytest.importorskip("deepspeed")
    recipe = write_recipe(workdir, world, steps=4, checkpoint_every=2)
    precision = "task.mixed_precision=bf16"  # the config's mixed_precision; the recipe must agree
    _run_here(recipe, "task.out_dir=ref16", "task.grad_accumulation=2", precision, "tracking.experiment=ref16")
    code = launch_with_config(
        TrainSpec(recipe=recipe, overrides=("task.out_dir=zero2", "task.steps=2", precision,
                                            "tracking.experiment=zero2"), workdir=workdir),
        AccelerateLaunch(LAUNCH / "zero2.yaml", num_processes=2))
    assert code == 0
    checkpoint = workdir / "zero2" / "checkpoint-00000002"
    state = read_state(checkpoint)
    assert (state.world_size, state.samples_seen) == (2, 8)
    assert state.ranks[0]["fingerprint"] == state.ranks[1]["fingerprint"]
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    assert len(optimizer["state"]) == len(optimizer["param_groups"][0]["params"])  # per parameter, gathered
    assert all(float(entry["step"]) == 2 for entry in optimizer["state"].values())
    assert any(float(entry["exp_avg_sq"].abs().sum()) > 0 for entry in optimizer["state"].values())

    _run_here(recipe, "task.out_dir=zero2", "task.resume=true", "task.grad_accumulation=2", precision,
              "tracking.experiment=zero2")
    curve, reference = _curve(world, "zero2"), _curve(world, "ref16")
    assert sorted(curve) == [1, 2, 3, 4]
    # bf16 autocast over fp32 weights: DeepSpeed's reduce-scatter and flat AdamW round differently
    # from DDP's, and bf16 matmuls carry that a little further.
    for step in (1, 2, 3, 4):
        assert curve[step] == pytest.approx(reference[step], abs=1e-3), step
    _assert_close_weights(workdir / "zero2" / "checkpoint-00000004", workdir / "ref16" / "checkpoint-00000004",
                          atol=1e-3)


def _train(**values) -> TrainConfig:
    return TrainConfig(**values)


def test_the_shipped_config_files_parse_and_are_checked_against_the_recipe(tmp_path):
    files = sorted(LAUNCH.glob("*.yaml"))
    assert {f.name for f in files} >= {"cpu_gloo.yaml", "ddp_multinode.yaml", "zero2.yaml", "fsdp.yaml"}
    for path in files:
        config = read_accelerate_config(path)  # accelerate's own parser
        train = _train(mixed_precision=config.get("mixed_precision") or "no")
        if config["distributed_type"] == "FSDP":
            with pytest.raises(MemoZooError, match="FSDP is not supported"):
                check_accelerate_config(path, config, train)
        else:
            check_accelerate_config(path, config, train)

    zero2 = read_accelerate_config(LAUNCH / "zero2.yaml")
    with pytest.raises(MemoZooError, match=r"zero2\.yaml: mixed_precision is 'bf16'.*task\.mixed_precision=bf16"):
        check_accelerate_config(LAUNCH / "zero2.yaml", zero2, _train())
    changed = yaml.safe_load((LAUNCH / "zero2.yaml").read_text())
    changed["deepspeed_config"]["gradient_accumulation_steps"] = 4
    path = tmp_path / "zero2-gas4.yaml"
    path.write_text(yaml.safe_dump(changed))
    with pytest.raises(MemoZooError, match=r"gradient_accumulation_steps is 4.*task\.grad_accumulation"):
        check_accelerate_config(path, read_accelerate_config(path), _train(mixed_precision="bf16"))
    changed["deepspeed_config"]["zero_stage"] = 3
    path.write_text(yaml.safe_dump(changed))
    with pytest.raises(MemoZooError, match="zero_stage is 3"):
        check_accelerate_config(path, read_accelerate_config(path), _train(mixed_precision="bf16",
                                                                           grad_accumulation=4))
    path.write_text("distributed_type: MULTI_GPU\nnot_an_accelerate_key: 1\n")
    with pytest.raises(MemoZooError, match="accelerate cannot read it"):
        read_accelerate_config(path)

    # Each node runs the same command with its machine rank and the main node's address.
    multinode = LAUNCH / "ddp_multinode.yaml"
    spec = TrainSpec(recipe=Path("recipes/train_tiny.yaml"), overrides=("task.steps=10",), resume=True)
    command = accelerate_command(spec, AccelerateLaunch(multinode, machine_rank=1, main_process_ip="10.1.2.3"),
                                 read_accelerate_config(multinode))
    text = " ".join(command)
    assert f"--config_file {multinode} --machine_rank 1 --main_process_ip 10.1.2.3" in text
    assert text.endswith("-m memo_zoo train recipes/train_tiny.yaml task.steps=10 --resume")
    assert "--main_process_port" not in text  # the file's port: the same on every node
    script = (LAUNCH / "slurm_train.sbatch").read_text()
    assert "SLURM_NODEID" in script and "--config-file" in script and "scontrol show hostnames" in script


def test_the_recipe_fills_and_owns_the_deepspeed_values():
    config = {"zero_optimization": {"stage": 2}, "gradient_accumulation_steps": "auto"}
    configure_deepspeed(config, _train(batch_size=3, grad_accumulation=2, max_grad_norm=0.5), world=4)
    assert (config["train_micro_batch_size_per_gpu"], config["gradient_accumulation_steps"],
            config["gradient_clipping"], config["train_batch_size"]) == (3, 2, 0.5, 24)
    with pytest.raises(MemoZooError, match=r"gradient_clipping is 2.0, the recipe's task.max_grad_norm 1.0"):
        configure_deepspeed({"zero_optimization": {"stage": 2}, "gradient_clipping": 2.0}, _train(), world=2)
    with pytest.raises(MemoZooError, match="bf16 section"):
        configure_deepspeed({"zero_optimization": {"stage": 2}, "bf16": {"enabled": True}}, _train(), world=2)
