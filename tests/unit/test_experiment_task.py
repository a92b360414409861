"""The experiment task's bookkeeping (issue 7): which work variants share, which clips are held out,
the truth-emotion schedule and the evaluation pair cut to the generated length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memo_zoo.data.clip import ClipRecord
from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.loader import validate_document
from memo_zoo.tasks.experiment import generation_key, training_key
from memo_zoo.tasks.experiment_config import HeldOutConfig
from memo_zoo.tasks.held_out import HeldOutClip, evaluation_pair, select_clips, truth_schedule
from tests.data_fixtures import write_clip
from tests.fake_datasets import DatasetRegistry

BASE = {"name": "e", "seed": 0, "task": {"kind": "experiment", "train": {"steps": 10}},
        "model": {"temporal": {"kind": "linear_memory"}, "audio_fusion": {"kind": "multimodal_attention"}},
        "data": {"dataset": {"kind": "talking_world"}}}


def recipe(registry, **changes):
    document = {**BASE, **changes}
    return validate_document(document, registry, "test")


def keys(registry, **changes):
    r = recipe(registry, **changes)
    train = training_key(r, r.task)
    return train, generation_key(r, r.task, train)


def test_generation_only_changes_share_the_training(registry):
    base_train, base_gen = keys(registry)
    cfg_task = {**BASE["task"], "generation": {"cfg": {"scale": 1.0}}}
    cfg_train, cfg_gen = keys(registry, task=cfg_task)
    assert cfg_train == base_train and cfg_gen != base_gen
    # logging cadence does not change the weights either
    log_task = {"kind": "experiment", "train": {"steps": 10, "log_every": 1, "checkpoint_every": 2}}
    assert keys(registry, task=log_task)[0] == base_train


def test_an_option_added_later_keeps_earlier_training_keys_until_it_is_set(registry):
    base_train, _ = keys(registry)
    default = {"kind": "experiment", "train": {"steps": 10, "motion_augment": {"patch_drop": 0.0}}}
    assert keys(registry, task=default)[0] == base_train
    # The key of a default training, as written by the versions before motion_augment existed.
    assert base_train == "16670ca5b2"
    augmented = {"kind": "experiment", "train": {"steps": 10, "motion_augment": {"noise_std": 0.5}}}
    assert keys(registry, task=augmented)[0] != base_train


@pytest.mark.parametrize("later", [{"colour_augment": {"shift": 0.0, "motion": "same"}}])
def test_colour_augment_at_its_default_keeps_the_key(registry, later):
    base_train, _ = keys(registry)
    assert keys(registry, task={"kind": "experiment", "train": {"steps": 10, **later}})[0] == base_train


def test_the_autoencoders_later_option_keeps_keys_until_it_is_set(registry):
    def with_vae(colour):
        vae = {"steps": 5} if colour is None else {"steps": 5, "colour_augment": colour}
        return keys(registry, task={"kind": "experiment", "train": {"steps": 10}, "train_vae": vae})

    assert with_vae({"shift": 0.0}) == with_vae(None)
    assert with_vae({"shift": 0.3})[0] != with_vae(None)[0]


@pytest.mark.parametrize("colour", [{"shift": 0.25}, {"gain": 0.2}, {"shift": 0.25, "motion": "own"}])
def test_colour_augment_changes_the_training_key(registry, colour):
    assert keys(registry, task={"kind": "experiment", "train": {"steps": 10, "colour_augment": colour}})[0] \
        != keys(registry)[0]


@pytest.mark.parametrize("change", [
    {"model": {"temporal": {"kind": "self_attention", "motion_frames": 2},
               "audio_fusion": {"kind": "multimodal_attention"}}},
    {"seed": 1},
    {"task": {"kind": "experiment", "train": {"steps": 11}}},
    {"data": {"dataset": {"kind": "talking_world", "identities": 5}}},
    # the autoencoder's options change every latent the network learns from (spec A1)
    {"task": {"kind": "experiment", "train": {"steps": 10}, "train_vae": {"steps": 5}}},
])
def test_anything_that_changes_training_changes_its_folder(registry, change):
    assert keys(registry, **change)[0] != keys(registry)[0]


def _record(name, seconds, **extra):
    return ClipRecord(clip_id=name, video=f"/x/{name}.mp4", fps=25.0, frame_count=int(seconds * 25), **extra)


def test_held_out_takes_the_longest_clips_of_the_split(registry):
    dataset = recipe(registry).data.dataset
    fake = DatasetRegistry([_record("a", 4), _record("long", 60), _record("b", 12), _record("c", 12)])
    chosen = select_clips(dataset, fake, HeldOutConfig(split="test", videos=2))
    assert [c.record.clip_id for c in chosen] == ["long", "b"]
    assert fake.configs[0].split == "test"
    assert [c.record.clip_id for c in select_clips(dataset, fake, HeldOutConfig(min_seconds=30, videos=5))] == ["long"]
    with pytest.raises(MemoZooError, match="no clip of at least 100"):
        select_clips(dataset, fake, HeldOutConfig(min_seconds=100))


def _truth_file(path, emotions, fps=25.0):
    from memo_zoo.emotion import PAPER_LABELS
    from memo_zoo_plugins.datasets.talking_world.truth import FRAME_FIELDS

    frames = len(emotions)
    arrays = {name: np.linspace(0, 1, frames) for name in FRAME_FIELDS}
    arrays["emotion"] = np.asarray(emotions, np.int64)
    arrays.update(clip_id=np.array("c"), identity=np.array(1), speaker=np.array("s"), voice=np.array("v"),
                  text=np.array("t"), fps=np.array(fps), size=np.array(32), tier=np.array("cartoon"),
                  sample_rate=np.array(16000), emotion_labels=np.array(PAPER_LABELS),
                  phoneme_symbol=np.array([], dtype="<U1"), phoneme_start=np.zeros(0), phoneme_end=np.zeros(0),
                  word_text=np.array([], dtype="<U1"), word_start=np.zeros(0), word_end=np.zeros(0))
    np.savez(path, **arrays)
    return path


def _world():
    """The dataset that wrote the truth files: it reads them (``frame_truth``)."""
    from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld, TalkingWorldConfig

    return TalkingWorld(TalkingWorldConfig(), progress=False)


def test_truth_schedule_follows_the_per_frame_emotion(tmp_path):
    # 10 frames happy (3), 15 sad (5), at 25 fps
    truth = _truth_file(tmp_path / "t.npz", [3] * 10 + [5] * 15)
    clip = HeldOutClip(_record("c", 1, truth=truth), 1.0, _world())
    schedule = truth_schedule(clip, None)
    assert [(s.start_s, s.end_s, s.label) for s in schedule] == [(0.0, 0.4, "happy"), (0.4, 1.0, "sad")]
    assert [s.label for s in truth_schedule(clip, 0.2)] == ["happy"]
    with pytest.raises(MemoZooError, match="needs per-frame truth"):
        truth_schedule(HeldOutClip(_record("d", 1), 1.0, _world()), None)


def test_the_held_out_clips_keep_the_dataset_that_reads_their_truth(registry, tmp_path):
    truth = _truth_file(tmp_path / "t.npz", [3] * 5)
    fake = DatasetRegistry([_record("c", 1, truth=truth)])
    (clip,) = select_clips(recipe(registry).data.dataset, fake, HeldOutConfig())
    # ListDataset writes no truth and cannot read it: the clip says so rather than guessing a format
    with pytest.raises(MemoZooError, match=r"\(ListDataset\) cannot read: it has no frame_truth"):
        clip.truth()


def test_evaluation_pair_is_cut_to_the_generated_length(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", frames=12)
    generated = write_clip(tmp_path / "gen.mp4", frames=8)
    truth = _truth_file(tmp_path / "t.npz", [4] * 12)
    clip = HeldOutClip(ClipRecord(clip_id="a/b", video=source, truth=truth), 0.5, _world())
    portrait = np.zeros((16, 16, 3), np.uint8)
    video, reference = evaluation_pair(clip, generated, portrait)
    assert video.id == reference.id == "a__b"
    assert len(video.frames) == len(reference.frames) == 8
    assert len(video.truth["emotion"]) == len(reference.truth["mouth_open"]) == 8
    assert video.reference_image is portrait


def test_the_held_out_speakers_are_those_of_the_held_out_split(registry):
    from types import SimpleNamespace

    from memo_zoo.tasks.expression_classifier import held_out_speakers

    dataset = recipe(registry).data.dataset
    fake = DatasetRegistry([ClipRecord(clip_id="x", video="x.mp4", speaker="tw_id060"),
                            ClipRecord(clip_id="y", video="y.mp4")])
    context = SimpleNamespace(build=fake.build)
    assert held_out_speakers(context, dataset, "test") == {"tw_id060"}  # a clip naming no speaker adds none
    assert fake.configs[0].split == "test" and dataset.split != "test"  # the recipe's own config is left as it is
    assert held_out_speakers(context, dataset, "train") == frozenset() and len(fake.configs) == 1


def test_the_experiment_hands_the_held_out_speakers_to_the_classifier_it_trains(registry, tmp_path, monkeypatch):
    """``ExperimentTask._expression_guide``: a missing classifier is trained with the held-out split's
    speakers barred; an existing file is used as it is, without listing the split."""
    from types import SimpleNamespace

    import memo_zoo.tasks.expression_classifier as classifier_task
    from memo_zoo.tasks.experiment import ExperimentTask

    r = recipe(registry, task={"kind": "experiment", "train": {"steps": 10},
                               "generation": {"expression_guidance": {"classifier": "c/guide.safetensors"}},
                               "train_expression_classifier": {}})
    fake = DatasetRegistry([ClipRecord(clip_id="x", video="x.mp4", speaker="tw_id061")])
    calls = []

    def ensure(context, target, options, train, held_out=frozenset(), field="classifier"):
        calls.append((target, held_out) if field == "classifier" else (target, field, options))
        return target

    monkeypatch.setattr(classifier_task, "ensure_classifier", ensure)
    context = SimpleNamespace(workdir=str(tmp_path), recipe=r, build=fake.build)
    task = ExperimentTask(r.task)
    task._expression_guide(context)
    assert calls == [(tmp_path / "c" / "guide.safetensors", frozenset({"tw_id061"}))]
    assert fake.configs[0].split == r.task.held_out.split == "test"
    assert task.expression_guidance.classifier == tmp_path / "c" / "guide.safetensors"

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "guide.safetensors").write_bytes(b"trained")
    task._expression_guide(context)
    assert calls[-1] == (tmp_path / "c" / "guide.safetensors", frozenset()) and len(fake.configs) == 1

    # an ensemble's members: resolved under the working directory and checked, never trained
    guidance = {"classifier": "c/guide.safetensors", "ensemble": ["c/a.safetensors", "/abs/b.safetensors"]}
    r = recipe(registry, task={"kind": "experiment", "train": {"steps": 10}, "generation": {"expression_guidance": guidance},
                               "train_expression_classifier": {}})
    task = ExperimentTask(r.task)
    task._expression_guide(SimpleNamespace(workdir=str(tmp_path), recipe=r, build=fake.build))
    members = [tmp_path / "c" / "a.safetensors", Path("/abs/b.safetensors")]
    assert calls[-2:] == [(member, "ensemble", None) for member in members]
    assert task.expression_guidance.ensemble == members
