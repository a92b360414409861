"""``task: train_emotion`` (spec D1, D2, E5; issue 6; plugins/emotion/training_task.py): its pieces, and
whole runs into MLflow.

Runs train on a small CREMA-D-named corpus of eSpeak speech (talking_world's speech.py: four
voices, four emotions) and on a tiny generated talking_world, for a few epochs: they check the
plumbing (split by speaker, windows, checkpoint, MLflow artifacts), not the accuracy the recipe
reaches (that figure is in the recipe's run, see recipes/train_emotion_detector.yaml).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from memo_zoo.errors import MemoZooError
from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.data.media import read_audio
from memo_zoo.runner import RunContext, run_recipe
from memo_zoo_plugins.emotion import prosody
from memo_zoo_plugins.emotion import training_task as train_emotion
from memo_zoo_plugins.emotion.training_task import (
    cut_segments, split_units, supervised_contrastive, training_windows)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: these runs are tiny, and on a shared 2-core machine a second thread mostly waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _TrainEmotionPlugin:
    @hookimpl
    def task_components(self):
        return [ComponentSpec("train_emotion", train_emotion.TrainEmotionConfig, train_emotion.build,
                              "train the emotion detector head")]


@pytest.fixture(scope="module")
def reg():
    """The installed registry, plus train_emotion / talking_world where they are not registered yet."""
    base = load_registry(disabled=())
    extra = []
    if "train_emotion" not in base.kinds("task"):
        extra.append(("test_train_emotion", _TrainEmotionPlugin()))
    if "talking_world" not in base.kinds("dataset"):
        from memo_zoo_plugins.datasets.talking_world import plugin as talking_world_plugin
        extra.append(("test_talking_world", talking_world_plugin))
    return load_registry(disabled=(), extra_plugins=extra) if extra else base


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for the module's runs: creating a sqlite store's tables takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


# ---- pieces ---------------------------------------------------------------------------------------

def test_supervised_contrastive_prefers_clustered_embeddings():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    clustered = torch.eye(3)[labels] + 0.01 * torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    mixed = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    assert supervised_contrastive(clustered, labels, 0.1) < supervised_contrastive(mixed, labels, 0.1)
    lonely = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive(lonely, torch.tensor([0, 1, 2]), 0.1)  # no positives at all
    loss.backward()
    assert float(loss.detach()) == 0.0 and lonely.grad is not None


def test_split_holds_out_a_quarter_of_the_units_whatever_their_order():
    units = [f"speaker:{i}" for i in range(12)]
    held = split_units(units, 0.25, seed=0)
    assert len(held) == 3 and held == split_units(list(reversed(units)) * 2, 0.25, seed=0)
    assert held != split_units(units, 0.25, seed=1)
    assert len(split_units(units[:2], 0.25, 0)) == 1 and split_units(units[:1], 0.25, 0) == set()


def test_long_clips_are_cut_into_30_s_segments_and_windows_cover_them():
    rate = 16_000
    assert cut_segments(np.zeros(65 * rate), 30.0) == [(0, 30 * rate), (30 * rate, 60 * rate), (60 * rate, 65 * rate)]
    assert cut_segments(np.zeros(int(60.5 * rate)), 30.0) == [(0, 30 * rate), (30 * rate, 60 * rate)]
    assert cut_segments(np.zeros(rate // 2), 30.0) == [(0, rate // 2)]
    starts, ends = training_windows(10 * rate, 3 * rate, rate)
    assert starts.tolist() == [r * rate for r in range(8)] and np.all(ends - starts == 3 * rate)
    starts, ends = training_windows(int(3.5 * rate), 3 * rate, rate)
    assert starts.tolist() == [0, rate // 2]
    assert training_windows(2 * rate, 3 * rate, rate)[1].tolist() == [2 * rate]


# ---- whole runs -----------------------------------------------------------------------------------

SPEAKERS = {"1001": "male_us", "1002": "female_us", "1003": "male_uk", "1004": "female_uk"}
EMOTIONS = {"ANG": "angry", "SAD": "sad", "NEU": "neutral"}


def _write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=16_000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((audio * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16_000, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _read(path: Path) -> tuple[np.ndarray, int]:
    return read_audio(path), 16_000


@pytest.fixture(scope="module")
def crema_corpus(tmp_path_factory) -> Path:
    """CREMA-D naming (<actor>_<sentence>_<EMO>_XX.wav): 4 voices x 3 emotions, ~4 s each."""
    from memo_zoo_plugins.datasets.talking_world.speech import synthesize_script

    root = tmp_path_factory.mktemp("crema") / "AudioWAV"
    lines = ["The old boat found a blue map.", "We paint on Monday."]
    for actor, voice in SPEAKERS.items():
        for code, emotion in EMOTIONS.items():
            audio = synthesize_script([(line, emotion) for line in lines], voice, seed=int(actor)).samples
            _write_wav(root / f"{actor}_DFA_{code}_XX.wav", audio)
    (root / "notes_1.wav").write_bytes(b"")  # not CREMA-D naming: reported, not trained on
    return root


def _recipe(folder: Path, body: str) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_training_on_a_corpus_logs_table_confusion_curves_and_a_loadable_checkpoint(workdir, reg, store,
                                                                                      crema_corpus):
    path = _recipe(workdir, f"""
        name: emotion-corpus
        seed: 3
        task: {{kind: train_emotion, epochs: 6, eval_every: 2, batch_size: 16, window_stride: 0.5,
                corpora: [{{corpus: crema_d, root: {crema_corpus}}}]}}
        emotion_detector: {{kind: prosody_mlp, checkpoint: heads/prosody.safetensors, widths: [32, 32, 32, 32]}}
        tracking: {{uri: "{store}"}}
    """)
    outcome = run_recipe(load_recipe(path, reg), reg)
    client = MlflowClient(outcome.tracking_uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert {"accuracy.crema_d", "accuracy.overall", "frame_accuracy.crema_d", "chance_accuracy"} <= set(metrics)
    assert metrics["data.skipped_files"] == 1 and metrics["data.train_segments"] == 9
    losses = [m.value for m in client.get_metric_history(outcome.run_id, "train.loss")]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert len(client.get_metric_history(outcome.run_id, "test.window_accuracy")) == 3
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"table3_accuracy.json", "table3_accuracy.md", "confusion.json", "confusion.png", "split.json",
            "checkpoint", "skipped_files.json"} <= artifacts
    split = json.loads(Path(client.download_artifacts(outcome.run_id, "split.json", str(workdir))).read_text())
    assert len(split["test_units"]) == 1 and not set(split["test_units"]) & set(split["train_units"])
    table = Path(client.download_artifacts(outcome.run_id, "table3_accuracy.md", str(workdir))).read_text()
    assert "| crema_d |" in table and "| overall |" in table
    checkpoint = workdir / "heads" / "prosody.safetensors"
    assert checkpoint.is_file() and checkpoint.with_suffix(".json").is_file()
    detector = prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(checkpoint)))
    audio, _ = _read(crema_corpus / "1001_DFA_SAD_XX.wav")
    assert detector.frame_labels(torch.from_numpy(audio), 16_000, 25.0, 50).shape == (50,)
    description = json.loads(checkpoint.with_suffix(".json").read_text())
    assert description["extra"]["run_id"] == outcome.run_id


def test_training_on_talking_world_uses_its_speakers_and_per_frame_truth(workdir, reg, store):
    path = _recipe(workdir, f"""
        name: emotion-world
        task: {{kind: train_emotion, epochs: 2, out: head.safetensors, window_stride: 1.0}}
        emotion_detector: {{kind: prosody_mlp, checkpoint: unused.safetensors, widths: [16, 16, 16, 16]}}
        data:
          dataset: {{kind: talking_world, root: {workdir / 'world'}, identities: 4, test_identities: 1,
                     clips_per_identity: 1, long_clips: 0, size: 32, seconds: [2.0, 4.0],
                     emotions: [angry, sad], emotion_change_probability: 1.0, workers: 1}}
        tracking: {{uri: "{store}"}}
    """)
    outcome = run_recipe(load_recipe(path, reg), reg)
    client = MlflowClient(outcome.tracking_uri)
    metrics = client.get_run(outcome.run_id).data.metrics
    assert "accuracy.talking_world" in metrics and metrics["data.train_segments"] + metrics["data.test_segments"] == 4
    split = json.loads(Path(client.download_artifacts(outcome.run_id, "split.json", str(workdir))).read_text())
    assert split["test_units"] == [u for u in split["test_units"] if u.startswith("speaker:tw_")]
    assert len(split["test_units"]) == 1  # 4 speakers, 3:1 (the dataset's own split is not used)
    assert (workdir / "head.safetensors").is_file()


@pytest.mark.parametrize("body, message", [
    ("task: {kind: train_emotion}\n", "trains the recipe's emotion_detector"),
    ("task: {kind: train_emotion}\nemotion_detector: {kind: fixed}\n", "trainable kinds: prosody_mlp"),
    ("task: {kind: train_emotion}\nemotion_detector: {kind: prosody_mlp, checkpoint: h.safetensors}\n",
     "has no data"),
    ("task: {kind: train_emotion, corpora: [{corpus: tess, root: absent}]}\n"
     "emotion_detector: {kind: prosody_mlp, checkpoint: h.safetensors}\n", "not a folder"),
])
def test_misconfigured_runs_fail_with_a_clear_message(workdir, reg, body, message):
    recipe = load_recipe(_recipe(workdir, "name: bad\n" + body), reg).recipe
    context = RunContext(recipe, reg, run=None, workdir=workdir)  # fails before anything is logged
    with pytest.raises(MemoZooError, match=message):
        reg.build("task", recipe.task).run(context)
