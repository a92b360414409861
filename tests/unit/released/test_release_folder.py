"""The released MEMO folder reader (memo_zoo/model/released/folder.py, method.md §10): finding a
release (local folder, hub id in a fake local HF cache), configs read as diffusers reads them with
unknown fields refused, strict weight loading, and a full-size meta-device check of the three small
parts against the golden manifest (golden set memo_released: ``manifest_full.json``,
``full_configs/``, ``tiny/``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.model.released.folder import (BIN_FILE, CONFIG_FILE, ERROR_LIST_LIMIT, PARTS, SAFETENSORS_FILE,
                                            SHARD_INDEX_FILE, hub_cache_dir, load_strict, read_part_config,
                                            read_part_state, resolve_release, state_mismatch)
from memo_zoo.model.released.small_parts import build_image_projector, load_image_projector
from memo_zoo_plugins.audio_encoder.released_projector import (RELEASED_TO_ZOO, build_token_projector,
                                                               load_token_projector, to_released_keys, to_zoo_keys)
from memo_zoo_plugins.emotion.released_classifier import build_classifier
from tests.golden import GoldenSet

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = GoldenSet.named("memo_released")
TINY = GOLDEN.path("tiny")
MANIFEST = json.loads(GOLDEN.path("manifest_full.json").read_text())["parts"]
BUILDERS = {"image_proj": build_image_projector, "audio_proj": build_token_projector,
            "audio_emotion_classifier": build_classifier}
SMALL = sorted(name for name, part in PARTS.items() if part.small)
SHA = "0123456789abcdef0123456789abcdef01234567"


def copy_part(release: Path, part: str) -> Path:
    """The tiny golden part copied into ``release`` under its hub subfolder."""
    target = PARTS[part].folder(release)
    shutil.copytree(PARTS[part].folder(TINY), target)
    return target


def write_config(release: Path, part: str, config: dict) -> Path:
    folder = PARTS[part].folder(release)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    return folder / CONFIG_FILE


# ------------------------------------------------------------------------------------ configs


def test_small_part_config_without_arguments_takes_the_code_defaults(tmp_path):
    """Q1: a config.json holding only _class_name builds the code defaults (full_configs/ holds them)."""
    for part in SMALL:
        defaults = json.loads(GOLDEN.path(f"full_configs/{part}.config.json").read_text())
        write_config(tmp_path, part, {"_class_name": defaults["_class_name"], "_diffusers_version": "0.31.0"})
        assert read_part_config(tmp_path, part) == {k: v for k, v in defaults.items() if not k.startswith("_")}


def test_tiny_configs_are_read_with_their_arguments():
    for part in SMALL:
        raw = json.loads((PARTS[part].folder(TINY) / CONFIG_FILE).read_text())
        assert read_part_config(TINY, part) == {k: v for k, v in raw.items() if not k.startswith("_")}


def test_unet_configs_keep_hidden_keys_and_drop_underscored_ones():
    """Q2: center_input_sample is no constructor argument but is kept; _out_channels is metadata."""
    for part in ("reference_net", "diffusion_net"):
        raw = json.loads((PARTS[part].folder(TINY) / CONFIG_FILE).read_text())
        config = read_part_config(TINY, part)
        assert not any(key.startswith("_") for key in config)
        assert config["center_input_sample"] == raw["center_input_sample"]
        assert all(config[k] == v for k, v in raw.items() if not k.startswith("_"))


def test_use_default_values_takes_the_code_default(tmp_path):
    write_config(tmp_path, "image_proj", {"_class_name": "ImageProjModel", "cross_attention_dim": 24,
                                          "_use_default_values": ["cross_attention_dim"]})
    assert read_part_config(tmp_path, "image_proj")["cross_attention_dim"] == PARTS["image_proj"].fields[
        "cross_attention_dim"]


def test_unknown_field_is_refused_by_name_naming_the_file(tmp_path):
    path = write_config(tmp_path, "audio_proj", {"_class_name": "AudioProjModel", "blocks": 3, "chanels": 16})
    with pytest.raises(MemoZooError) as error:
        read_part_config(tmp_path, "audio_proj")
    assert str(path) in str(error.value) and "'chanels'" in str(error.value) and "channels" in str(error.value)


def test_other_class_and_bad_sizes_are_refused(tmp_path):
    path = write_config(tmp_path, "image_proj", {"_class_name": "AudioProjModel"})
    with pytest.raises(MemoZooError, match="_class_name is 'AudioProjModel'"):
        read_part_config(tmp_path, "image_proj")
    write_config(tmp_path, "image_proj", {"_class_name": ["x"]})
    with pytest.raises(MemoZooError, match="_class_name must be a string"):
        read_part_config(tmp_path, "image_proj")
    write_config(tmp_path, "image_proj", {"_class_name": "ImageProjModel", "clip_embeddings_dim": "512"})
    with pytest.raises(MemoZooError, match=r"clip_embeddings_dim='512'") as error:
        read_part_config(tmp_path, "image_proj")
    assert str(path) in str(error.value)
    (path).write_text("{not json")
    with pytest.raises(MemoZooError, match="cannot be read as JSON"):
        read_part_config(tmp_path, "image_proj")


def test_missing_config_and_unknown_part_are_named(tmp_path):
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "misc/audio_emotion_classifier" / CONFIG_FILE)):
        read_part_config(tmp_path, "audio_emotion_classifier")
    with pytest.raises(MemoZooError, match="unknown part 'vae'"):
        read_part_config(tmp_path, "vae")


# ------------------------------------------------------------------------------------ weights


def test_missing_weights_file_names_the_path(tmp_path):
    write_config(tmp_path, "image_proj", {"_class_name": "ImageProjModel"})
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "image_proj" / SAFETENSORS_FILE)):
        read_part_state(tmp_path, "image_proj")


def test_bin_and_shards_load_like_the_safetensors(tmp_path):
    state = read_part_state(TINY, "audio_proj")
    bin_release, shard_release = tmp_path / "bin", tmp_path / "shards"
    folder = PARTS["audio_proj"].folder(bin_release)
    folder.mkdir(parents=True)
    torch.save(state, folder / BIN_FILE)
    folder = PARTS["audio_proj"].folder(shard_release)
    folder.mkdir(parents=True)
    names = sorted(state)
    halves = {"a.safetensors": names[: len(names) // 2], "b.safetensors": names[len(names) // 2:]}
    for shard, keys in halves.items():
        save_file({k: state[k] for k in keys}, str(folder / shard))
    (folder / SHARD_INDEX_FILE).write_text(json.dumps(
        {"weight_map": {k: shard for shard, keys in halves.items() for k in keys}}))
    for release in (bin_release, shard_release):
        loaded = read_part_state(release, "audio_proj")
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


class NotATensor:
    pass


def test_unsafe_bin_and_damaged_safetensors_are_refused_naming_the_file(tmp_path):
    folder = PARTS["image_proj"].folder(tmp_path)
    folder.mkdir(parents=True)
    torch.save({"proj.weight": NotATensor()}, folder / BIN_FILE)
    with pytest.raises(MemoZooError, match=f"{folder / BIN_FILE}: cannot be loaded .* weights_only=True"):
        read_part_state(tmp_path, "image_proj")
    (folder / SAFETENSORS_FILE).write_bytes((PARTS["image_proj"].folder(TINY) / SAFETENSORS_FILE).read_bytes()[:200])
    with pytest.raises(MemoZooError, match=f"{folder / SAFETENSORS_FILE}: cannot be read as safetensors"):
        read_part_state(tmp_path, "image_proj")


def tiny_image_proj() -> tuple[nn.Module, dict[str, torch.Tensor], str]:
    config = read_part_config(TINY, "image_proj")
    source = str(PARTS["image_proj"].folder(TINY) / SAFETENSORS_FILE)
    return build_image_projector(config), read_part_state(TINY, "image_proj"), source


def test_strict_load_names_file_key_and_both_shapes():
    module, state, source = tiny_image_proj()
    del state["norm.bias"]
    state["proj.extra"] = torch.zeros(3)
    state["proj.weight"] = torch.zeros(7, 5)
    expected_weight = tuple(module.proj.weight.shape)
    with pytest.raises(MemoZooError) as error:
        load_strict(module, state, source)
    text = str(error.value)
    assert text.startswith(f"{source}: does not fit ImageProjector (1 missing, 1 unexpected, 1 with a wrong shape)")
    assert f"missing: 'norm.bias' {tuple(module.norm.bias.shape)}" in text
    assert "unexpected: 'proj.extra' (3,)" in text
    assert f"wrong shape: 'proj.weight': file (7, 5), module {expected_weight}" in text


def test_strict_load_leaves_nothing_at_init_and_copies_every_tensor():
    module, state, source = tiny_image_proj()
    load_strict(module, state, source)
    assert all(torch.equal(module.state_dict()[k], state[k]) for k in state)


def test_strict_load_checks_persistent_buffers_only():
    class WithBuffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("pe", torch.arange(4.0))
            self.register_buffer("scratch", torch.zeros(3), persistent=False)

    module = WithBuffers()
    state = {k: torch.ones_like(v) for k, v in module.state_dict().items()}
    with pytest.raises(MemoZooError, match="missing: 'pe' \\(4,\\)"):
        load_strict(module, {k: v for k, v in state.items() if k != "pe"}, "f.safetensors")
    with pytest.raises(MemoZooError, match="unexpected: 'scratch'"):
        load_strict(module, {**state, "scratch": torch.zeros(3)}, "f.safetensors")
    load_strict(module, state, "f.safetensors")
    assert torch.equal(module.pe, torch.ones(4))


def test_long_problem_lists_are_capped_with_a_count():
    module = nn.Sequential(*[nn.Linear(1, 1) for _ in range(ERROR_LIST_LIMIT + 5)])
    with pytest.raises(MemoZooError) as error:
        load_strict(module, {}, "empty.safetensors")
    missing = 2 * (ERROR_LIST_LIMIT + 5)
    assert f"({missing} missing)" in str(error.value)
    assert f"... and {missing - ERROR_LIST_LIMIT} more missing" in str(error.value)


def test_audio_proj_rename_is_a_bijection_and_errors_name_both_keys():
    config = read_part_config(TINY, "audio_proj")
    module = build_token_projector(config)
    state = read_part_state(TINY, "audio_proj")
    assert set(to_zoo_keys(state)) == set(module.state_dict())
    assert to_released_keys(to_zoo_keys(state)).keys() == state.keys()
    state["proj2.weight"] = state["proj2.weight"][:, :3]
    with pytest.raises(MemoZooError, match=r"'proj2.weight' \(module key 'mlp.2.weight'\): file \(32, 3\), "
                                           r"module \(32, 32\)"):
        load_strict(module, state, "audio_proj.safetensors", rename=RELEASED_TO_ZOO)


# ------------------------------------------------------------------------------------ finding a release


def fake_hub_cache(root: Path, repo: str = "memoavatar/memo", parts=("image_proj",)) -> Path:
    """``models--owner--name/snapshots/<sha>/...`` + ``refs/main``, as huggingface_hub lays out its cache."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / SHA
    for part in parts:
        copy_part(snapshot, part)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(SHA)
    return snapshot


@pytest.fixture
def hf_env(monkeypatch):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_hub_id_resolves_in_the_local_cache_named_by_hf_hub_cache(tmp_path, hf_env):
    snapshot = fake_hub_cache(tmp_path / "hub")
    hf_env.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for reference in ("memoavatar/memo", "memoavatar/memo@main", f"memoavatar/memo@{SHA}"):
        assert resolve_release(reference) == snapshot
    module = load_image_projector(resolve_release("memoavatar/memo"))
    assert module.proj.in_features == read_part_config(TINY, "image_proj")["clip_embeddings_dim"]


def test_hf_home_chooses_the_cache_when_hf_hub_cache_is_unset(tmp_path, hf_env):
    snapshot = fake_hub_cache(tmp_path / "home" / "hub")
    hf_env.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    assert resolve_release("memoavatar/memo") == snapshot


def test_absent_hub_id_names_the_id_the_cache_and_the_command(tmp_path, hf_env):
    fake_hub_cache(tmp_path / "hub")
    hf_env.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError) as error:
        resolve_release("someone/memo")
    text = str(error.value)
    assert "'someone/memo'" in text and str(tmp_path / "hub") in text
    assert "`huggingface-cli download someone/memo`" in text
    with pytest.raises(MissingWeightsError, match="--revision v9"):
        resolve_release("memoavatar/memo@v9")


def test_local_folders_must_hold_a_released_part(tmp_path):
    copy_part(tmp_path / "release", "audio_proj")
    assert resolve_release(str(tmp_path / "release")) == tmp_path / "release"
    (tmp_path / "empty").mkdir()
    with pytest.raises(MemoZooError, match="holds none of the released parts"):
        resolve_release(tmp_path / "empty")
    with pytest.raises(MissingWeightsError, match="not a hub id"):
        resolve_release(str(tmp_path / "nowhere" / "at" / "all"))


def test_a_bare_name_is_looked_up_in_the_weights_dir(tmp_path, monkeypatch):
    copy_part(tmp_path / "memo", "image_proj")
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path / "memo")  # no folder named "memo" here: the name must go through the weights dir
    assert resolve_release("memo") == tmp_path / "memo"


def tiny_wav2vec2_like_the_release(folder: Path, part: dict) -> Path:
    """A random wav2vec2 whose stacked hidden states have the release's blocks x channels."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=part["channels"], num_hidden_layers=part["blocks"], num_attention_heads=2,
                            intermediate_size=24, conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10)
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder


def test_wav2vec2_projector_option_loads_the_release_and_refuses_other_sizes(tmp_path):
    """``projector:`` resolves a release, checks its sizes against the encoder's, then loads its audio_proj."""
    from memo_zoo_plugins.audio_encoder.wav2vec2 import Wav2Vec2AudioEncoder, Wav2Vec2EncoderConfig

    part = read_part_config(TINY, "audio_proj")
    backbone = tiny_wav2vec2_like_the_release(tmp_path / "wav2vec2", part)
    sizes = dict(weights=str(backbone), token_count=part["context_tokens"], token_dim=part["output_dim"],
                 window=(part["seq_len"] - 1) // 2, hidden=part["intermediate_dim"])
    encoder = Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(**sizes, projector=str(TINY)))
    released = to_zoo_keys(read_part_state(TINY, "audio_proj"))
    assert all(torch.equal(encoder.projector.state_dict()[k], v) for k, v in released.items())
    waveform = torch.sin(torch.linspace(0, 300, 16000 // 2))[None] * 0.3
    with torch.no_grad():
        tokens = encoder.encode(waveform, 5, 25.0)
    assert tokens.shape == (1, 5, part["context_tokens"], part["output_dim"])
    with pytest.raises(MemoZooError, match=f"token_count 7 but the release's context_tokens is "
                                           f"{part['context_tokens']}"):
        Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(**{**sizes, "token_count": 7}, projector=str(TINY)))
    with pytest.raises(MemoZooError, match=f"number of layers 1 but the release's blocks is {part['blocks']}"):
        Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(**sizes, layers=[1], projector=str(TINY)))
    projector, config = load_token_projector(TINY)
    assert config == part and not projector.training


# ------------------------------------------------------------------------------------ full size on meta


@pytest.mark.parametrize("part", SMALL)
def test_full_size_small_part_matches_the_manifest_on_meta(tmp_path, part):
    """Built from full_configs/ on the meta device (nothing allocated): key by key, the manifest's
    shapes, and a strict meta load from the manifest's shapes passes."""
    entry = MANIFEST[part]
    assert entry["hub_subfolder"] == PARTS[part].subfolder
    config_file = GOLDEN.path(f"full_configs/{part}.config.json")
    target = PARTS[part].folder(tmp_path)
    target.mkdir(parents=True)
    shutil.copy(config_file, target / CONFIG_FILE)
    config = read_part_config(tmp_path, part)
    assert config == {k: v for k, v in entry["config_used"].items() if not k.startswith("_")}
    with torch.device("meta"):
        module = BUILDERS[part](config)
    ours = module.state_dict()
    assert all(t.is_meta for t in ours.values())
    if part == "audio_proj":
        ours = to_released_keys(ours)
    expected = {key: (tuple(shape), dtype) for key, (shape, dtype) in entry["state_dict"].items()}
    assert {key: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in ours.items()} == expected
    assert sum(t.numel() for t in module.parameters()) == entry["num_parameters"]
    stand_ins = {key: torch.empty(shape, device="meta") for key, (shape, _) in expected.items()}
    rename = RELEASED_TO_ZOO if part == "audio_proj" else None
    assert state_mismatch(module, stand_ins, str(config_file), rename)[1] == []


@pytest.mark.parametrize("part", sorted(name for name, part in PARTS.items() if not part.small))
def test_full_size_unet_configs_are_accepted_whole(tmp_path, part):
    """The manifest's configs of the two UNets (SD1.5 keys for reference_net) read with every
    non-underscored field kept as given."""
    config_used = MANIFEST[part]["config_used"]
    write_config(tmp_path, part, config_used)
    config = read_part_config(tmp_path, part)
    assert all(config[key] == value for key, value in config_used.items() if not key.startswith("_"))
    assert set(config) >= set(PARTS[part].fields)
