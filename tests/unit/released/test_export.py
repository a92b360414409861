"""Export to the released layout (issue 18, item 4): tiny release -> zoo modules -> export -> the
same files.

Every part, size and option comes from the golden tiny release (``tests.golden``): the parts are
the :data:`PARTS` present there, the motion / audio options come from its diffusion_net
``config.json`` (helpers.py), so the test runs unchanged on another golden folder of this format.
The audio encoder and the emotion detector are stand-ins that give their part the way a component
does (``released_part()``), around the real zoo modules loaded from the release.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

from memo_zoo.errors import MemoZooError
from memo_zoo.model.released.export import (EXPORT_DTYPES, RELEASED_DIFFUSERS_VERSION, REQUIRED_PARTS, ReleasedPart,
                                            check_released_components, config_text, diffusion_net_config_json,
                                            export_release, reference_net_config_json, write_release)
from memo_zoo.model.released.folder import (CONFIG_FILE, PARTS, SAFETENSORS_FILE, SHARD_INDEX_FILE,
                                            part_weights_file, read_part_config, read_part_state)
from memo_zoo.model.released.networks import load_diffusion_net, load_reference_net
from memo_zoo.model.released.small_parts import load_image_projector
from memo_zoo.model.released.unet_config import ReleasedReferenceNetConfig, ReleasedUNet3DConfig
from memo_zoo.recipe.components import component_factory
from memo_zoo_plugins.audio_encoder.released_projector import load_token_projector, to_released_keys
from memo_zoo_plugins.emotion.released_classifier import load_classifier
from tests.unit.released.helpers import GOLDEN, TINY, audio_options, diffusion_config, motion_options

pytestmark = pytest.mark.usefixtures("one_thread")

PRESENT = [name for name, part in PARTS.items() if part.folder(TINY).is_dir()]


class ProjectorSource:
    """Stands for the wav2vec2 encoder holding the released projector: gives it as ``audio_proj``."""

    def __init__(self, release: Path) -> None:
        self.projector, self.config = load_token_projector(release)

    def released_part(self) -> ReleasedPart:
        return ReleasedPart("audio_proj", self.config, to_released_keys(self.projector.state_dict()))


class ClassifierSource:
    """Stands for the emotion2vec_released detector: gives its head as ``audio_emotion_classifier``."""

    def __init__(self, release: Path) -> None:
        self.classifier = load_classifier(release)

    def released_part(self) -> ReleasedPart:
        config = {"num_classifier_layers": self.classifier.num_layers,
                  "num_classifier_channels": self.classifier.channels}
        return ReleasedPart("audio_emotion_classifier", config, self.classifier.state_dict())


def released_factories(registry):
    """The registry's motion_module / joint_audio factories with the tiny release's options."""
    config = diffusion_config()
    temporal = component_factory(registry, "temporal", {"kind": "motion_module", **motion_options(config).model_dump()})
    audio = component_factory(registry, "audio_fusion", {"kind": "joint_audio", **audio_options(config).model_dump()})
    return temporal, audio


def zoo_model(registry, release: Path) -> dict:
    temporal, audio = released_factories(registry)
    return {"reference_net": load_reference_net(release), "diffusion_net": load_diffusion_net(release, temporal, audio),
            "image_projector": load_image_projector(release), "audio_encoder": ProjectorSource(release),
            "emotion_detector": ClassifierSource(release) if "audio_emotion_classifier" in PRESENT else None}


@pytest.fixture(scope="module")
def model(registry):
    return zoo_model(registry, TINY)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "release"
    result = export_release(out, **model)
    return out, result


def tensors(folder: Path, part: str) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    path = part_weights_file(folder, part)
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    return read_part_state(folder, part), metadata


@pytest.mark.parametrize("part", PRESENT)
def test_round_trip_is_bit_identical(exported, part):
    out, _ = exported
    ours, ours_meta = tensors(out, part)
    theirs, theirs_meta = tensors(TINY, part)
    assert sorted(ours) == sorted(theirs)
    for key, tensor in theirs.items():
        assert ours[key].dtype == tensor.dtype, key
        assert ours[key].shape == tensor.shape, key
        # bit for bit: compare the raw bytes, so that -0.0 / NaN payloads count too
        assert torch.equal(ours[key].view(torch.uint8) if ours[key].dim() else ours[key],
                           tensor.view(torch.uint8) if tensor.dim() else tensor), key
    assert ours_meta == theirs_meta == {"format": "pt"}


@pytest.mark.parametrize("part", PRESENT)
def test_round_trip_config_fields_equal(exported, part):
    out, _ = exported
    ours = (PARTS[part].folder(out) / CONFIG_FILE).read_text(encoding="utf-8")
    theirs = (PARTS[part].folder(TINY) / CONFIG_FILE).read_text(encoding="utf-8")
    ours_json, theirs_json = json.loads(ours), json.loads(theirs)
    assert sorted(ours_json) == sorted(theirs_json)
    for key, value in theirs_json.items():
        assert ours_json[key] == value and type(ours_json[key]) is type(value), key
    # diffusers' to_json_string layout: indent 2, sorted keys, a final newline (the golden small
    # parts' files were edited by hand, Q1, and lack the newline: the layout is checked, not their bytes)
    assert ours == json.dumps(theirs_json, indent=2, sort_keys=True) + "\n"


def test_weights_files_are_byte_identical(exported):
    """safetensors orders tensors itself, so the same tensors and metadata give the same bytes."""
    out, _ = exported
    for part in PRESENT:
        assert part_weights_file(out, part).read_bytes() == part_weights_file(TINY, part).read_bytes(), part


def test_export_loads_back_strictly(exported, registry):
    out, result = exported
    assert sorted(result.files) == sorted(PRESENT)
    assert "wrote the released layout" in result.summary()
    temporal, audio = released_factories(registry)
    load_reference_net(out)
    load_diffusion_net(out, temporal, audio)
    load_image_projector(out)
    load_token_projector(out)
    if "audio_emotion_classifier" in PRESENT:
        load_classifier(out)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary folders left behind"


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_dtype_casts_floating_tensors_and_loads_back(model, registry, tmp_path, name):
    dtype = EXPORT_DTYPES[name]
    out = tmp_path / "release"
    export_release(out, **model, dtype=dtype)
    for part in PRESENT:
        stored, _ = tensors(out, part)
        assert {t.dtype for t in stored.values() if t.is_floating_point()} == {dtype}, part
    temporal, audio = released_factories(registry)
    net = load_diffusion_net(out, temporal, audio)  # from_pretrained without torch_dtype: float32 again
    expected = model["diffusion_net"].state_dict()
    for key, value in net.state_dict().items():
        assert torch.equal(value, expected[key].to(dtype).float()), key


def test_sharded_weights_are_read_back(model, tmp_path):
    out = tmp_path / "release"
    part = ReleasedPart("image_proj", {"cross_attention_dim": model["image_projector"].width,
                                       "clip_embeddings_dim": model["image_projector"].proj.in_features,
                                       "clip_extra_context_tokens": model["image_projector"].tokens},
                        model["image_projector"].state_dict())
    others = [ReleasedPart(name, {}, {}) for name in REQUIRED_PARTS if name != "image_proj"]
    smallest = min(t.numel() * t.element_size() for t in part.state.values())
    result = write_release(out, [part, *others], max_shard_bytes=smallest)
    folder = PARTS["image_proj"].folder(out)
    assert (folder / SHARD_INDEX_FILE).is_file() and not (folder / SAFETENSORS_FILE).exists()
    assert len(result.files["image_proj"]) > 2
    back = read_part_state(out, "image_proj")
    assert sorted(back) == sorted(part.state)
    assert all(torch.equal(back[k], v) for k, v in part.state.items())


def test_non_empty_target_refused_unless_force(model, tmp_path):
    out = tmp_path / "release"
    out.mkdir()
    keep = out / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(MemoZooError, match="not empty.*--force"):
        export_release(out, **model)
    assert keep.read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    export_release(out, **model, force=True)
    assert not keep.exists() and all(PARTS[p].folder(out).is_dir() for p in PRESENT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"], "the old folder or a temporary one was left"


def test_empty_folder_target_is_used_and_file_target_refused(model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    export_release(empty, **model)
    assert (empty / "diffusion_net" / CONFIG_FILE).is_file()
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(MemoZooError, match="not a folder"):
        export_release(file, **model, force=True)


def test_a_failed_export_leaves_nothing(model, tmp_path):
    out = tmp_path / "release"
    broken = ReleasedPart("image_proj", {"cross_attention_dim": 1, "clip_embeddings_dim": 1,
                                         "clip_extra_context_tokens": 1},
                          {"proj.weight": torch.empty(1, 1, device="meta")})
    others = [ReleasedPart(name, {}, {}) for name in REQUIRED_PARTS if name != "image_proj"]
    with pytest.raises(MemoZooError, match="meta device"):
        write_release(out, [*others, broken])
    assert list(tmp_path.iterdir()) == []


def test_missing_audio_projector_is_refused(model, tmp_path):
    with pytest.raises(MemoZooError, match="audio_proj.*wav2vec2"):
        export_release(tmp_path / "release", **{**model, "audio_encoder": object()})
    with pytest.raises(MemoZooError, match="without audio_proj"):
        write_release(tmp_path / "release", [ReleasedPart(n, {}, {}) for n in REQUIRED_PARTS if n != "audio_proj"])
    assert not (tmp_path / "release").exists()


def test_unknown_or_repeated_parts_are_refused(tmp_path):
    with pytest.raises(MemoZooError, match="unknown part 'vae'"):
        write_release(tmp_path / "r", [ReleasedPart("vae", {}, {})])
    with pytest.raises(MemoZooError, match="more than once"):
        write_release(tmp_path / "r", [ReleasedPart("image_proj", {}, {})] * 2)


# ------------------------------------------------------------------------------------ refusals


def released_like(**changes) -> SimpleNamespace:
    """A stand-in diffusion net: the tiny config and the released components' options, ``changes``
    applied as ``slot.option`` or ``slot.kind``."""
    config = diffusion_config()
    temporal = {"kind": "motion_module", **motion_options(config).model_dump()}
    audio = {"kind": "joint_audio", **audio_options(config).model_dump()}
    for dotted, value in changes.items():
        slot, option = dotted.split("__")
        (temporal if slot == "temporal" else audio)[option] = value
    return SimpleNamespace(config=config, temporal_config=SimpleNamespace(**temporal),
                           audio_fusion_config=SimpleNamespace(**audio))


def test_released_components_pass():
    check_released_components(released_like())


@pytest.mark.parametrize("changes, message", [
    ({"temporal__kind": "self_attention"}, r"model.temporal is 'self_attention': the released code only has its "
                                           r"motion module.*export needs model.temporal.kind 'motion_module'"),
    ({"audio__kind": "cross_attention"}, r"model.audio_fusion is 'cross_attention': the released code only has its "
                                         r"audio module.*'joint_audio'"),
    ({"temporal__decay": 0.8}, r"model.temporal.decay is 0.8: the released code hard-codes .*\(Q3\) as 0.9"),
    ({"audio__double_audio_residual": False}, r"double_audio_residual is False.*\(Q7\)"),
    ({"audio__num_emotion_classes": 8}, r"num_emotion_classes is 8.*\(Q8\) as 9"),
    ({"temporal__heads": 3}, r"model.temporal.heads is 3 but diffusion_net config.json "
                             r"motion_module_kwargs.num_attention_heads gives"),
    ({"audio__null_emotion_row": False}, r"null_emotion_row is False.*emo_drop_rate"),
])
def test_what_the_release_cannot_run_is_refused_by_name(changes, message):
    with pytest.raises(MemoZooError, match=message):
        check_released_components(released_like(**changes))


def test_a_component_config_without_kind_is_refused():
    net = released_like()
    del net.temporal_config.kind
    with pytest.raises(MemoZooError, match="cannot tell which temporal component.*'motion_module'"):
        check_released_components(net)


# ------------------------------------------------------------------------------------ full size


def full_config_files() -> dict[str, Path]:
    """The golden set's full-size config of each part (``full_configs/<part>.config*.json``)."""
    files = {}
    for name in PARTS:
        found = sorted(GOLDEN.path("full_configs").glob(f"{name}.config*.json"))
        if found:
            files[name] = found[0]
    return files


@pytest.mark.parametrize("part", sorted(full_config_files()))
def test_full_size_configs_are_written_with_every_constructor_argument(part, tmp_path):
    """A full-size config read as a release reads it and written back: every value the file gives
    comes back unchanged (type included), and every constructor argument of the released class is
    written (the release registers them all; Q1: the small parts' too, by hand)."""
    source = full_config_files()[part]
    folder = PARTS[part].folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    config = read_part_config(tmp_path, part)
    if part == "reference_net":
        written = reference_net_config_json(ReleasedReferenceNetConfig.from_mapping(config))
    elif part == "diffusion_net":
        written = diffusion_net_config_json(ReleasedUNet3DConfig.from_mapping(config))
    else:
        written = config
    given = {k: v for k, v in json.loads(source.read_text(encoding="utf-8")).items() if not k.startswith("_")}
    for key, value in given.items():
        assert written[key] == value and type(written[key]) is type(value), key
    assert set(PARTS[part].fields) <= set(written)
    text = json.loads(config_text(part, written))
    assert text["_class_name"] == PARTS[part].class_name and text["_diffusers_version"] == RELEASED_DIFFUSERS_VERSION
