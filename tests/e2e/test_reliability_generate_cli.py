"""``memo-zoo generate`` refuses an --out that would destroy an input, names a folder or a container
it cannot write, and a checkpoint of another temporal architecture: exit 2, no traceback, the
inputs byte-identical (issue 16)."""

from __future__ import annotations

import pytest
import yaml

from memo_zoo.cli.app import main
from tests.e2e.test_generate_cli import SMALL, cli_setup, files  # noqa: F401  (fixtures)
from tests.unit.test_generate import make_model, make_recipe

pytestmark = pytest.mark.filterwarnings("ignore::memo_zoo.generate.warning.GenerationWarning")


def test_cli_refuses_an_out_that_is_an_input_a_folder_or_another_container(files, workdir, capsys):  # noqa: F811
    recipe, image, audio = files
    video_audio = workdir / "talk.mp4"  # driving audio taken from a video: the name --out is likely to get
    video_audio.write_bytes(audio.read_bytes())
    before = image.read_bytes(), video_audio.read_bytes()
    (workdir / "videos").mkdir()
    for out, expected in (("talk.mp4", "is the input --audio"), (str(video_audio), "overwrite it"),
                          (str(image), "extension '.png'"), (str(workdir / "videos"), "existing folder"),
                          ("clip.webm", ".mp4, .m4v, .mov, .mkv")):
        code = main(["generate", "--recipe", str(recipe), "--image", str(image), "--audio", str(video_audio),
                     "--out", out, *SMALL])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and "Traceback" not in err, (out, err)
    assert (image.read_bytes(), video_audio.read_bytes()) == before
    assert not (workdir / "clip.webm").exists() and list((workdir / "videos").iterdir()) == []


def test_cli_refuses_a_checkpoint_of_another_temporal_module(files, workdir, capsys):  # noqa: F811
    recipe, image, audio = files
    make_model().net.save_pretrained(workdir / "net")  # linear_memory, gamma 0.9
    other = workdir / "attention.yaml"
    document = make_recipe(steps=1)
    document["model"]["temporal"] = {"kind": "self_attention", "heads": 2}
    other.write_text(yaml.safe_dump(document))
    for recipe_file, overrides, expected in (
            (other, [], "model.temporal.kind: recipe 'self_attention', checkpoint 'linear_memory'"),
            (recipe, ["model.temporal.gamma=0.5"], "model.temporal.gamma: recipe 0.5, checkpoint 0.9")):
        code = main(["generate", "--recipe", str(recipe_file), "--image", str(image), "--audio", str(audio),
                     "--checkpoint", str(workdir / "net"), "--out", "x.mp4", *SMALL, *overrides])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and "Traceback" not in err, err
    assert not (workdir / "x.mp4").exists()
