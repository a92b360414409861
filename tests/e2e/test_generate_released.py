"""``memo-zoo generate`` with ``recipes/memo_released.yaml`` end to end (issue 18 item 6).

The recipe's ``tiny`` profile points every part at stand-ins under MEMO_ZOO_WEIGHTS_DIR, built
here: ``memo-tiny`` (the golden tiny release), ``wav2vec2-tiny`` (a Wav2Vec2Model shaped for the
tiny release's ``audio_proj``: its hidden size and layer count are read from that part's config)
and ``sd-vae-tiny`` (a small AutoencoderKL). ``--weights`` is given as a flag, as a user would.
The CLI runs in-process through ``memo_zoo.cli.app.main`` with the installed registry.
"""

from __future__ import annotations

import math

import pytest
import torch

import memo_zoo.cli.registry as cli_registry
from memo_zoo.cli.app import main
from memo_zoo.data import media
from memo_zoo.model.released.folder import read_part_config
from memo_zoo.plugin.manager import load_registry
from tests.golden import GoldenSet
from tests.unit.test_generate import portrait, speech_like, write_wav

pytestmark = pytest.mark.filterwarnings("ignore::memo_zoo.generate.warning.GenerationWarning")

TINY = GoldenSet.named("memo_released").path("tiny")
SECONDS = 0.5


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    from diffusers import AutoencoderKL
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    root = tmp_path_factory.mktemp("weights")
    (root / "memo-tiny").symlink_to(TINY, target_is_directory=True)
    audio_proj = read_part_config(TINY, "audio_proj")
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=audio_proj["channels"], num_hidden_layers=audio_proj["blocks"],
                            num_attention_heads=2, intermediate_size=24, conv_dim=(8, 8), conv_kernel=(10, 3),
                            conv_stride=(5, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            vocab_size=10)
    Wav2Vec2Model(config).save_pretrained(root / "wav2vec2-tiny")
    AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                  norm_num_groups=4, sample_size=16, scaling_factor=0.18215).save_pretrained(root / "sd-vae-tiny")
    return root


@pytest.fixture(autouse=True)
def cli_setup(monkeypatch, weights_dir):
    registry = load_registry(disabled=())
    monkeypatch.setattr(cli_registry, "registry", lambda: registry)
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(weights_dir))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_generate_with_the_released_recipe_writes_an_mp4(workdir, repo_root, capsys):
    image = portrait(workdir / "face.png")
    audio = write_wav(workdir / "voice.wav", speech_like(SECONDS, 16_000), 16_000)
    code = main(["generate", "--recipe", str(repo_root / "recipes" / "memo_released.yaml"), "--profile", "tiny",
                 "--weights", "memo-tiny", "--image", str(image), "--audio", str(audio), "--out", "talk.mp4",
                 "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    frames, fps = media.read_frames(workdir / "talk.mp4")
    assert fps == 25.0 and frames.shape == (math.ceil(SECONDS * 25), 32, 32, 3)
    assert media.probe(workdir / "talk.mp4").has_audio
    assert "4 clips" in out.out  # clip_frames 4: the decoded past frames fed three later clips


def test_a_missing_release_names_it(workdir, repo_root, capsys):
    image = portrait(workdir / "face.png")
    audio = write_wav(workdir / "voice.wav", speech_like(SECONDS, 16_000), 16_000)
    code = main(["generate", "--recipe", str(repo_root / "recipes" / "memo_released.yaml"), "--profile", "tiny",
                 "--weights", "no-such-release", "--image", str(image), "--audio", str(audio), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "no-such-release" in err and "Traceback" not in err
