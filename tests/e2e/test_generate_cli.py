"""``memo-zoo generate`` and ``task: {kind: generate}`` end to end (spec §6, I4).

The CLI runs in-process through ``memo_zoo.cli.app.main`` with the test registry (the installed
entry points plus the generate command and task when an older installation lacks them), so exit
codes and messages are exactly what a user sees. Bad input exits with code 2 and names the file;
a checkpoint of another architecture exits 2 naming the differing field; the task logs the video,
the speed and the emotion schedule to MLflow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

import memo_zoo.cli.registry as cli_registry
import memo_zoo.tasks.generate as generate_task
from memo_zoo.cli.app import main
from memo_zoo.data import media
from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from tests.unit.test_generate import make_model, make_recipe, portrait, speech_like, write_wav
from tests.unit.test_generate_loading import save_training_checkpoint

# Random weights and a noise portrait: both warnings are expected in every test here.
pytestmark = pytest.mark.filterwarnings("ignore::memo_zoo.generate.warning.GenerationWarning")

SECONDS = 0.5
FRAMES = math.ceil(SECONDS * 25)  # 13 frames: clips of 4, 4, 4, 1


class _GenerateTask:
    """Registers ``generate`` in the task slot where the installed entry points do not have it yet."""

    @hookimpl
    def task_components(self) -> list[ComponentSpec]:
        return [ComponentSpec("generate", generate_task.GenerateConfig, generate_task.build,
                              "generate a talking video (spec §6) and log it to MLflow")]


def _registry():
    installed = load_registry(disabled=())
    extra = []
    if "generate" not in installed.kinds("task"):
        extra.append(("test_generate_task", _GenerateTask()))
    return load_registry(disabled=(), extra_plugins=extra) if extra else installed


REGISTRY = _registry()


@pytest.fixture(autouse=True)
def cli_setup(monkeypatch):
    monkeypatch.setattr(cli_registry, "registry", lambda: REGISTRY)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def files(workdir):
    """A recipe of the tiny generation network, a portrait and half a second of audio."""
    recipe = workdir / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(make_recipe(steps=2, detector={"kind": "fixed", "label": "neutral"})))
    voice = write_wav(workdir / "voice.wav", speech_like(SECONDS, 16_000), 16_000)
    return recipe, portrait(workdir / "face.png"), voice


SMALL = ["--size", "32", "--fps", "25", "generate.clip_frames=4", "generate.motion_frames=3"]


def test_cli_generates_a_video_with_the_flags_and_overrides(files, workdir, capsys):
    recipe, image, audio = files
    code = main(["generate", "--recipe", str(recipe), "--image", str(image), "--audio", str(audio), "--out",
                 "video.mp4", "--emotion", "happy", "--steps", "1", "--cfg", "2.0", *SMALL,
                 "generate.cfg.mode=per_condition", "seed=5"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "wrote video.mp4: 13 frames at 25 fps" in out.out
    frames, fps = media.read_frames(workdir / "video.mp4")
    assert frames.shape == (FRAMES, 32, 32, 3) and fps == 25.0
    assert media.probe(workdir / "video.mp4").has_audio


def test_cli_exits_2_naming_a_bad_image(files, workdir, capsys):
    recipe, _, audio = files
    missing = workdir / "no_such_portrait.jpg"
    code = main(["generate", "--recipe", str(recipe), "--image", str(missing), "--audio", str(audio), *SMALL])
    err = capsys.readouterr().err
    assert code == 2 and str(missing) in err and "Traceback" not in err
    code = main(["generate", "--recipe", str(recipe), "--audio", str(audio)])
    assert code == 2 and "needs --image" in capsys.readouterr().err
    assert not (workdir / "generated.mp4").exists()


def test_cli_exits_2_on_silent_audio_and_on_a_checkpoint_of_another_architecture(files, workdir, capsys):
    recipe, image, _ = files
    silent = write_wav(workdir / "silent.wav", speech_like(SECONDS, 16_000) * 0, 16_000)
    assert main(["generate", "--recipe", str(recipe), "--image", str(image), "--audio", str(silent), *SMALL]) == 2
    err = capsys.readouterr().err
    assert str(silent) in err and "silent" in err

    save_training_checkpoint(make_model(), workdir / "run")
    code = main(["generate", "--recipe", str(recipe), "--image", str(image), "--audio", str(files[2]),
                 "--checkpoint", str(workdir / "run"), *SMALL, "model.network.cross_attention_dim=24"])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not match the recipe's model" in err and "cross_attention_dim: recipe 24, checkpoint 16" in err


def test_generate_task_logs_the_video_speed_and_emotion_schedule(files, workdir):
    _, image, audio = files
    document = make_recipe(steps=1, detector={"kind": "fixed", "label": "sad"})
    document["task"] = {"kind": "generate", "image": image.name, "audio": audio.name, "out": "clips/talk.mp4",
                        "size": 32, "fps": 25, "clip_frames": 4, "motion_frames": 3}
    document["tracking"] = {"uri": f"file:{workdir / 'mlruns'}"}
    path = workdir / "generate.yaml"
    path.write_text(yaml.safe_dump(document))
    outcome = run_recipe(load_recipe(path, REGISTRY), REGISTRY, workdir=workdir)
    client = MlflowClient(outcome.tracking_uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["frames"] == FRAMES and run.data.metrics["clips"] == 4
    assert run.data.metrics["seconds_per_frame"] > 0
    assert [a.path for a in client.list_artifacts(outcome.run_id, "video")] == ["video/talk.mp4"]
    local = client.download_artifacts(outcome.run_id, "emotion_schedule.json", str(workdir / "artifacts"))
    entries = json.loads(Path(local).read_text())
    assert [e["label"] for e in entries] == ["sad"] * 4 and entries[0]["source"] == "detected"
    assert (workdir / "clips" / "talk.mp4").is_file()
