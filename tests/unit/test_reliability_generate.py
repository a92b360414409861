"""Issue 16 on the generation side: nothing lost, nothing silently wrong.

- A checkpoint of another architecture (another temporal kind, another gamma) is refused before
  loading even when its parameter names fit, and the message lists every differing field.
- ``out`` never replaces an input (same path, or same inode) nor names a folder, and its extension
  selects a container that can hold H.264 + AAC, or is refused.
- Damaged weight files (memo_net.json / .safetensors, sd_vae, wav2vec2) are MemoZooErrors naming
  the file.
- Atomic writes (videos, safetensors, caches) get the mode a plain open() would give.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from memo_zoo.atomic import write_atomically, write_bytes_atomically
from memo_zoo.data import media
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.config import GenerateConfig, check_output
from memo_zoo.generate.loading import load_generator_model
from memo_zoo.generate.pipeline import generate_video
from memo_zoo.model.compatibility import check_network_matches, network_differences
from memo_zoo.model.memo_net import CONFIG_FILE, WEIGHTS_FILE, MemoNet
from memo_zoo.recipe.components import slot_factories
from memo_zoo.recipe.loader import validate_document
from memo_zoo_plugins.audio_encoder.wav2vec2 import Wav2Vec2AudioEncoder, Wav2Vec2EncoderConfig
from memo_zoo_plugins.vae.sd_vae import SDVAE, SDVAEConfig
from tests.plugins.test_encoders import tiny_wav2vec2  # noqa: F401  (fixture)
from tests.plugins.test_vaes_and_samplers import tiny_vae  # noqa: F401  (fixture)
from tests.unit.test_generate import REGISTRY, config, inputs, make_model, make_recipe  # noqa: F401  (inputs: fixture)

pytestmark = pytest.mark.filterwarnings("ignore::memo_zoo.generate.warning.GenerationWarning")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def recipe(temporal: dict | None = None, **options):
    document = make_recipe(**options)
    if temporal is not None:
        document["model"]["temporal"] = temporal
    return validate_document(document, REGISTRY, "test")


@pytest.fixture(scope="module")
def linear_memory_net(tmp_path_factory) -> Path:
    """A MemoNet folder saved with the recipe's temporal module: linear_memory, gamma 0.9 (default)."""
    folder = tmp_path_factory.mktemp("ckpt") / "net"
    make_model().net.save_pretrained(folder)
    return folder


def damaged_copy(source: Path, target: Path, name: str, content: bytes | None = None) -> Path:
    """A copy of the folder ``source`` whose file ``name`` is cut to half (or replaced by ``content``)."""
    target.mkdir(parents=True)
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    data = (target / name).read_bytes()
    (target / name).write_bytes(data[:len(data) // 2] if content is None else content)
    return target / name


# ---- (2) architecture of a checkpoint ------------------------------------------------------------

def test_a_linear_memory_checkpoint_is_refused_under_a_self_attention_recipe(linear_memory_net):
    other = recipe({"kind": "self_attention", "heads": 2})
    with pytest.raises(MemoZooError) as error:
        load_generator_model(linear_memory_net, other, REGISTRY)
    message = str(error.value)
    assert "model.temporal.kind: recipe 'self_attention', checkpoint 'linear_memory'" in message
    assert str(linear_memory_net / CONFIG_FILE) in message


def test_another_gamma_is_refused_listing_every_differing_field(linear_memory_net):
    other = recipe({"kind": "linear_memory", "heads": 2, "gamma": 0.8, "update": "released"})
    # Same parameter names and shapes: the weights alone would load without a word.
    factories = slot_factories(REGISTRY)
    assert set(MemoNet.from_pretrained(linear_memory_net, factories, temporal=other.model.temporal).state_dict()) \
        == set(MemoNet.from_pretrained(linear_memory_net, factories).state_dict())
    assert network_differences(linear_memory_net, other.model) == [
        "model.temporal.gamma: recipe 0.8, checkpoint 0.9", "model.temporal.update: recipe 'released', checkpoint 'paper'"]
    with pytest.raises(MemoZooError, match="gamma: recipe 0.8, checkpoint 0.9"):
        load_generator_model(linear_memory_net, other, REGISTRY)
    with pytest.raises(MemoZooError, match="the trainer's resume.*\n  model.temporal.gamma"):
        check_network_matches(linear_memory_net, other.model, "the trainer's resume")
    check_network_matches(linear_memory_net, other.model, "x", ignore=("model.temporal.gamma", "model.temporal.update"))


def test_the_same_architecture_and_an_unset_slot_are_accepted(linear_memory_net):
    same = recipe()
    assert network_differences(linear_memory_net, same.model) == []
    assert isinstance(load_generator_model(linear_memory_net, same, REGISTRY).net, MemoNet)
    unset = same.model.model_copy(update={"temporal": None, "audio_fusion": None})
    assert network_differences(linear_memory_net, unset) == []  # the recipe takes the checkpoint's


def test_a_damaged_memo_net_json_is_an_error_naming_it_not_no_differences(linear_memory_net, tmp_path):
    for case, content in {"garbage": b"{ not json", "half": None, "wrong": b'{"format": "other"}',
                          "empty sections": b'{"format": "memo-zoo/memo-net", "version": 1}'}.items():
        broken = damaged_copy(linear_memory_net, tmp_path / case.replace(" ", "_"), CONFIG_FILE, content)
        with pytest.raises(MemoZooError) as error:
            network_differences(broken.parent, recipe().model)
        assert str(broken) in str(error.value), case
        with pytest.raises(MemoZooError, match=str(broken)):
            load_generator_model(broken.parent, recipe(), REGISTRY)
        with pytest.raises(MemoZooError, match=str(broken)):
            MemoNet.from_pretrained(broken.parent, slot_factories(REGISTRY))


def test_a_truncated_memo_net_safetensors_is_an_error_naming_it(linear_memory_net, tmp_path):
    broken = damaged_copy(linear_memory_net, tmp_path / "net", WEIGHTS_FILE)
    for load in (lambda: MemoNet.from_pretrained(broken.parent, slot_factories(REGISTRY)),
                 lambda: load_generator_model(broken.parent, recipe(), REGISTRY)):
        with pytest.raises(MemoZooError, match=f"{broken}: cannot be read as safetensors"):
            load()


# ---- (5) damaged pretrained weights ----------------------------------------------------------------

def test_a_damaged_sd_vae_folder_names_the_file(tiny_vae, tmp_path):  # noqa: F811
    folder = tiny_vae[1] / "sd-pipeline" / "vae"
    weights = next(p.name for p in folder.iterdir() if p.suffix == ".safetensors")
    for case, name, content in (("half", weights, None), ("json", "config.json", b"{ not json")):
        broken = damaged_copy(folder, tmp_path / case, name, content)
        with pytest.raises(MemoZooError, match=f"{broken} cannot be read as"):
            SDVAE(SDVAEConfig(weights=str(broken.parent)))
    single = tmp_path / "vae.safetensors"
    single.write_bytes((tiny_vae[1] / "vae.safetensors").read_bytes()[:1000])
    with pytest.raises(MemoZooError, match=f"{single} cannot be read as safetensors"):
        SDVAE(SDVAEConfig(weights=str(single), single_file_config=str(folder)))


def test_a_damaged_wav2vec2_folder_names_the_file(tiny_wav2vec2, tmp_path):  # noqa: F811
    for case, name, content in (("half", "model.safetensors", None), ("json", "config.json", b"[1,")):
        broken = damaged_copy(tiny_wav2vec2, tmp_path / case, name, content)
        with pytest.raises(MemoZooError, match=f"{broken} cannot be read as"):
            Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(weights=str(broken.parent), token_count=4, token_dim=24,
                                                       hidden=16))


# ---- (3) the output file -----------------------------------------------------------------------------

def test_an_extension_selects_a_container_that_holds_h264_and_aac(tmp_path):
    for extension, muxer in ((".mkv", "matroska"), (".mov", "mov"), (".MP4", "mp4")):
        path = media.write_video(tmp_path / f"clip{extension}", np.zeros((3, 16, 16, 3), np.uint8), 25,
                                 np.zeros(4000, np.float32))
        with media.av.open(str(path)) as opened:
            assert muxer in opened.format.name.split(",")
            assert [s.codec_context.name for s in opened.streams] == ["h264", "aac"]
    for refused in ("clip.webm", "clip.avi", "clip", "clip.gif"):
        with pytest.raises(ValidationError, match=r"\.mp4, \.m4v, \.mov, \.mkv"):
            GenerateConfig(image="a.png", audio="b.wav", out=refused)
        with pytest.raises(media.MediaError, match="can be written as"):
            media.write_video(tmp_path / refused, np.zeros((1, 16, 16, 3), np.uint8), 25)
        assert not (tmp_path / refused).exists()


def test_out_that_is_an_input_or_a_folder_is_refused_before_any_work(inputs, tmp_path, monkeypatch):  # noqa: F811
    image, audio = inputs
    monkeypatch.chdir(tmp_path)
    before = {path: path.read_bytes() for path in (image, audio)}
    # Validated first, the folder made after: as for the generate task, which resolves paths later.
    late_folder = config(inputs, tmp_path, out=tmp_path / "videos.mp4")
    (tmp_path / "videos.mp4").mkdir()
    os.link(audio, tmp_path / "speech.mp4")  # the same inode under a video name
    os.symlink(image, tmp_path / "face.mp4")  # and another name resolving to the image
    cases = {"image": Path("./face.mp4"), "folder": tmp_path / "videos.mp4", "hard link": tmp_path / "speech.mp4"}
    model = make_model()
    calls = []
    monkeypatch.setattr(media.VideoWriter, "__enter__", lambda self: calls.append(self))
    for case, out in cases.items():
        options = late_folder if case == "folder" else config(inputs, tmp_path, out=out)
        with pytest.raises(MemoZooError) as error:
            check_output(options)
        assert str(out) in str(error.value), case
        with pytest.raises(MemoZooError, match="overwrite it|is an existing folder"):
            generate_video(model, options, progress=False)
    (tmp_path / "videos").mkdir()
    with pytest.raises(ValidationError, match="videos is an existing folder; give the video's file name"):
        config(inputs, tmp_path, out=tmp_path / "videos")
    assert calls == [] and {path: path.read_bytes() for path in (image, audio)} == before
    check_output(config(inputs, tmp_path, out=tmp_path / "new.mp4"))  # a new name is fine


# ---- (9a) file modes ------------------------------------------------------------------------------

@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield 0o027
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_mode_plain_open_would_give(tmp_path, umask_027):
    written = write_bytes_atomically(tmp_path / "new.bin", b"data")
    assert mode(written) == 0o666 & ~umask_027 == 0o640
    from safetensors.torch import save_file
    weights = write_atomically(tmp_path / "w.safetensors", lambda temp: save_file({"a": torch.zeros(2)}, temp))
    assert mode(weights) == 0o640
    video = media.write_video(tmp_path / "v.mp4", np.zeros((2, 16, 16, 3), np.uint8), 25)
    assert mode(video) == 0o640
    existing = tmp_path / "private.bin"
    existing.write_bytes(b"old")
    existing.chmod(0o600)
    write_bytes_atomically(existing, b"new")
    assert mode(existing) == 0o600 and existing.read_bytes() == b"new"  # a replaced file keeps its mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.bin", "private.bin", "v.mp4", "w.safetensors"]
