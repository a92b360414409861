"""Stage 1 shared by an experiment's variants (spec L2, L3; memo_zoo.tasks.shared_stage1):
how a training splits, what the shared folder's key covers, how a variant starts from it, and how
the two trainings' logs stay apart in one MLflow run."""

from __future__ import annotations

import pytest
import torch
from mlflow import MlflowClient

from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.loader import validate_document
from memo_zoo.tracking.prefixed import PrefixedRun
from memo_zoo.tracking.tracker import Tracker
from memo_zoo.train.checkpoint import TrainerState, save_checkpoint
from memo_zoo.train.config import TrainConfig
from memo_zoo.train.loop import Trainer
from memo_zoo.train.step import TrainModules, new_module_prefixes
from memo_zoo.tasks.experiment import _copy_final_loss, shared_stage1, stage1_key, training_key
from memo_zoo.tasks.shared_stage1 import split_stage1, train_key_document
from tests.small_recipes import NETWORK, SAMPLES, small_train_recipe

PHASES = [{"name": "stage1", "steps": 6, "trainable": "spatial"}, {"name": "joint", "trainable": "all"}]


def test_a_spatial_first_phase_splits_off_and_the_rest_restarts_its_count():
    train = TrainConfig(steps=10, phases=PHASES, robust_loss={"threshold": 2.0, "start_step": 8}, lr=0.01)
    stage1, rest = split_stage1(train)
    assert stage1.steps == 6 and [p.name for p in stage1.phases] == ["stage1"]
    assert rest.steps == 4 and [(p.name, p.trainable) for p in rest.phases] == [("joint", "all")]
    # L5's start step was counted from the start of the whole training.
    assert rest.robust_loss.start_step == 2 and rest.robust_loss.threshold == 2.0
    assert stage1.lr == rest.lr == 0.01 and stage1.samples == train.samples


@pytest.mark.parametrize("phases", [
    [{"name": "joint", "trainable": "all"}],                          # no stage 1
    [{"name": "stage1", "steps": 10, "trainable": "spatial"}],       # stage 1 only: nothing after it
    [{"name": "warm", "steps": 4, "trainable": "new"}, {"name": "joint", "trainable": "all"}],
])
def test_nothing_to_share_without_a_spatial_phase_followed_by_others(phases):
    assert split_stage1(TrainConfig(steps=10, phases=phases)) is None


BASE = {"name": "e", "seed": 0,
        "task": {"kind": "experiment", "train": {"steps": 10, "phases": PHASES}},
        "model": {"temporal": {"kind": "linear_memory"}, "audio_fusion": {"kind": "multimodal_attention"}},
        "data": {"dataset": {"kind": "talking_world"}}}


def _stage1_key(registry, **changes):
    recipe = validate_document({**BASE, **changes}, registry, "test")
    split = shared_stage1(recipe.task)
    return None if split is None else stage1_key(recipe, recipe.task, split[0])


@pytest.mark.parametrize("change", [
    {"model": {"temporal": {"kind": "self_attention", "motion_frames": 2},
               "audio_fusion": {"kind": "multimodal_attention"}}},
    {"model": {"temporal": {"kind": "linear_memory"}, "audio_fusion": {"kind": "cross_attention"}}},
    {"model": {"temporal": {"kind": "linear_memory"}, "audio_fusion": {"kind": "multimodal_attention"},
               "audio_encoder": {"kind": "log_mel", "token_dim": 16, "hidden": 32}}},
    {"task": {"kind": "experiment", "train": {"steps": 12, "phases": PHASES}}},      # a longer stage 2
    {"task": {"kind": "experiment", "train": {"steps": 10, "phases": PHASES}, "generation": {"clip_frames": 8}},
     "scheduler": {"kind": "flow_euler", "steps": 3}},
    # stage 1 sees single frames: corrupting motion frames is a stage-2 option
    {"task": {"kind": "experiment", "train": {"steps": 10, "phases": PHASES,
                                              "motion_augment": {"patch_drop": 0.25, "noise_std": 0.5}}}},
])
def test_what_stage_1_does_not_read_shares_its_folder(registry, change):
    assert _stage1_key(registry, **change) == _stage1_key(registry)


def _colour(colour):
    return {"task": {"kind": "experiment", "train": {"steps": 10, "phases": PHASES, "colour_augment": colour}}}


def test_stage_1_reads_the_colour_shift_but_not_how_motion_frames_would_get_it(registry):
    same = _stage1_key(registry, **_colour({"shift": 0.25}))
    # The reference and target frames are recoloured in stage 1 too: its own folder.
    assert same != _stage1_key(registry)
    # Stage 1 has no motion frames: 'own' and 'same' share it.
    assert _stage1_key(registry, **_colour({"shift": 0.25, "motion": "own"})) == same


@pytest.mark.parametrize("change", [
    {"seed": 1},
    {"data": {"dataset": {"kind": "talking_world", "identities": 5}}},
    {"model": {"temporal": {"kind": "linear_memory"}, "audio_fusion": {"kind": "multimodal_attention"},
               "image_encoder": {"kind": "conv", "embed_dim": 16}}},
    {"task": {"kind": "experiment", "train": {"steps": 10, "phases": PHASES, "lr": 0.5}}},
    {"task": {"kind": "experiment", "train": {"steps": 11, "phases": [dict(PHASES[0], steps=7), PHASES[1]]}}},
    {"task": {"kind": "experiment", "train": {"steps": 10, "phases": PHASES}, "train_vae": {"steps": 5}}},
])
def test_what_stage_1_reads_changes_its_folder(registry, change):
    assert _stage1_key(registry, **change) != _stage1_key(registry)


def test_sharing_is_off_when_asked_and_marks_the_variant_key(registry):
    off = {"kind": "experiment", "train": {"steps": 10, "phases": PHASES}, "share_stage1": False}
    assert _stage1_key(registry, task=off) is None
    shared = validate_document(BASE, registry, "test")
    alone = validate_document({**BASE, "task": off}, registry, "test")
    # A variant trained from a shared stage 1 is not the unbroken run: its folder differs.
    assert training_key(shared, shared.task) != training_key(alone, alone.task)


class _Run:
    def __init__(self):
        self.metrics, self.tags, self.dicts = {}, {}, {}
        self.id = "run-1"

    def log_metrics(self, metrics, step=None):
        self.metrics.update({(k, step): v for k, v in metrics.items()})

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_dict(self, data, artifact_file):
        self.dicts[artifact_file] = data


def test_prefixed_run_keeps_the_two_trainings_apart():
    run = _Run()
    stage1 = PrefixedRun(run, "stage1")
    stage1.log_metrics({"loss": 1.0}, step=3)
    run.log_metrics({"loss": 0.5}, step=3)
    stage1.set_tags({"memo_zoo.train.out_dir": "/a"})
    stage1.log_dict({"steps": 6}, "train_summary.json")
    assert run.metrics == {("stage1.loss", 3): 1.0, ("loss", 3): 0.5}
    assert run.tags == {"stage1.memo_zoo.train.out_dir": "/a"} and run.dicts == {"stage1/train_summary.json": {"steps": 6}}
    assert stage1.id == "run-1"
    with pytest.raises(ValueError, match="prefix"):
        PrefixedRun(run, ".")


def _trained_stage1(tmp_path, registry):
    """A checkpoint of a linear-memory net whose every weight is off its initial value."""
    recipe = small_train_recipe(tmp_path, registry)
    torch.manual_seed(1)
    net, _, image, audio = Trainer(TrainConfig(samples=SAMPLES), recipe, registry, None, tmp_path)._build_parts()
    with torch.no_grad():
        for module in (net, image, audio):
            for p in module.parameters():
                p.add_(1.0)
    modules = TrainModules(net, image, audio, 25.0, 1)
    optimizer = torch.optim.AdamW(modules.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    names = {n for n, _ in modules.named_parameters()}
    folder = save_checkpoint(tmp_path / "stage1", TrainerState(step=6), modules, names, optimizer, scheduler, None, 1)
    return folder, net, image, audio


def test_init_weights_from_a_training_checkpoint_brings_its_trainable_encoders(tmp_path, registry):
    """Stage 2 started from a stage-1 checkpoint (L2, L3) must see the image encoder the image
    projector was trained against, not a fresh random one (scope 'all': the audio encoder too)."""
    folder, net1, image1, audio1 = _trained_stage1(tmp_path, registry)
    torch.manual_seed(12)
    config = TrainConfig(samples=SAMPLES, init_weights=folder)
    net, _, image, audio = Trainer(config, small_train_recipe(tmp_path, registry), registry, None,
                                   tmp_path)._build_parts()
    for mine, theirs in ((net, net1), (image, image1), (audio, audio1)):
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), name


def test_a_variant_with_another_temporal_module_starts_from_the_shared_stage_1(tmp_path, registry):
    folder, net1, image1, audio1 = _trained_stage1(tmp_path, registry)
    variant = small_train_recipe(tmp_path, registry, "{kind: self_attention, motion_frames: 2, heads: 2}", name="variant")
    config = TrainConfig(samples=SAMPLES, init_weights=folder, init_weights_scope="spatial")
    torch.manual_seed(2)
    fresh, _, _, fresh_audio = Trainer(TrainConfig(samples=SAMPLES), variant, registry, None, tmp_path)._build_parts()
    torch.manual_seed(2)
    net, _, image, audio = Trainer(config, variant, registry, None, tmp_path)._build_parts()
    added = new_module_prefixes(net)
    assert added and all(".audio." in p or ".temporal." in p for p in added)
    stage1_state, fresh_state = net1.state_dict(), fresh.state_dict()
    for name, value in net.state_dict().items():
        if name.startswith(added):
            assert torch.equal(value, fresh_state[name]), name      # the variant's own modules, as built
        else:
            assert torch.equal(value, stage1_state[name]), name     # everything stage 1 trained
    assert all(torch.equal(a, b) for a, b in zip(image.state_dict().values(), image1.state_dict().values()))
    # Stage 1 does not train the audio encoder: the variant keeps its own.
    assert all(torch.equal(a, b) for a, b in zip(audio.state_dict().values(), fresh_audio.state_dict().values()))


def test_a_stage_1_of_another_network_is_refused_by_name(tmp_path, registry):
    folder, *_ = _trained_stage1(tmp_path, registry)
    wider = small_train_recipe(tmp_path, registry, network=dict(NETWORK, block_out_channels=[16, 48]), name="wider")
    config = TrainConfig(samples=SAMPLES, init_weights=folder, init_weights_scope="spatial")
    # Refused from the saved configuration, before any weight is read, naming the field.
    with pytest.raises(MemoZooError, match=r"model\.network\.block_out_channels: recipe \[16, 48\], checkpoint "
                                           r"\[16, 32\]"):
        Trainer(config, wider, registry, None, tmp_path)._build_parts()


def test_a_reused_training_reports_the_loss_it_ended_with(tmp_path):
    """The comparison's train_loss column reads each variant's own ``loss``: a variant that reused a
    training gets the trained run's final value (main curve and stage 1's prefixed one)."""
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "reuse", tmp_path / "artifacts", tmp_path)
    with tracker.run("trained") as trained:
        for step, loss in ((10, 0.4), (20, 0.25)):
            trained.log_metrics({"loss": loss, "stage1.loss": loss + 1}, step=step)
    with tracker.run("reused") as reused:
        _copy_final_loss(reused, TrainerState(step=20, run_id=trained.id))
        _copy_final_loss(PrefixedRun(reused, "stage1"), TrainerState(step=20, run_id=trained.id))
        # A checkpoint saved under another store (unknown run) or without a run: nothing to copy.
        _copy_final_loss(reused, TrainerState(step=20, run_id="0" * 32))
        _copy_final_loss(reused, TrainerState(step=20))
    client = MlflowClient(tracker.uri)
    metrics = client.get_run(reused.id).data.metrics
    assert metrics == {"loss": 0.25, "stage1.loss": 1.25}
    assert [m.step for m in client.get_metric_history(reused.id, "loss")] == [20]


def test_motion_decoupling_keys_the_training_only_when_set_and_never_stage_1():
    """A new sample option at its default leaves every existing training's key as it was; stage 1
    reads no motion frames, so variants differing only in it share stage 1."""
    plain = TrainConfig(steps=10, phases=PHASES)
    decoupled = TrainConfig(steps=10, phases=PHASES, samples={"motion_decoupling": 0.5})
    assert "motion_decoupling" not in train_key_document(plain)["samples"]
    assert train_key_document(decoupled)["samples"]["motion_decoupling"] == 0.5
    stage1, rest = split_stage1(decoupled)
    assert stage1.samples.motion_decoupling == 0.0 and rest.samples.motion_decoupling == 0.5
    assert train_key_document(stage1) == train_key_document(split_stage1(plain)[0])
