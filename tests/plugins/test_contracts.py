"""Registry-wide contract tests: every registered component of every slot, third-party ones too.

What each slot promises is written in its module (memo_zoo/slots/<slot>.py, also on its hook) and
checked by the public kit ``memo_zoo.testing``, which plugin authors call in their own tests; this
file runs the kit's checks, one promise per test, over whatever the registry holds, with each
component's default options.
"""

from __future__ import annotations

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from memo_zoo.plugin.manager import load_registry
from memo_zoo.plugin.types import ComponentSpec
from memo_zoo.slots import SLOTS
from memo_zoo.testing import (MissingOptions, check_audio_encoder, check_buildable, check_component,
                              check_documented, check_emotion_detector, check_image_encoder, check_scheduler,
                              check_task, check_temporal, check_vae, required_options)
from memo_zoo.testing import audio_fusion, temporal

# The components are tiny: one intra-op thread is faster and steadier than two shared cores.
pytestmark = pytest.mark.usefixtures("one_thread")

REGISTRY = load_registry(disabled=())


def components(slot: str):
    return [pytest.param(kind, entry, id=f"{slot}:{kind}") for kind, entry in sorted(REGISTRY.components[slot].items())]


ALL = [pytest.param(slot.name, kind, entry, id=f"{slot.name}:{kind}")
       for slot in SLOTS for kind, entry in sorted(REGISTRY.components[slot.name].items())]


@pytest.mark.parametrize("slot, kind, entry", ALL)
def test_component_is_documented_and_buildable_with_defaults(slot, kind, entry):
    check_documented(entry)
    # Options without a default (a dataset's root, a task's output folder) need a real value.
    if not required_options(entry):
        check_buildable(slot, entry)


# ---- temporal (spec §2) -------------------------------------------------------------------------

@pytest.mark.parametrize("kind, entry", components("temporal"))
def test_temporal_is_the_identity_at_init_with_and_without_memory(kind, entry):
    temporal.check_identity_at_init(entry)


@pytest.mark.parametrize("kind, entry", components("temporal"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_temporal_keeps_shape_and_dtype(kind, entry, dtype):
    temporal.check_shape_and_dtype(entry, dtype)


@pytest.mark.parametrize("kind, entry", components("temporal"))
def test_temporal_gradients_reach_every_parameter(kind, entry):
    temporal.check_gradients(entry)


@pytest.mark.parametrize("kind, entry", components("temporal"))
def test_temporal_state_dict_round_trip_and_seeded_determinism(kind, entry):
    temporal.check_state_dict_and_seeding(entry)


@pytest.mark.parametrize("kind, entry", components("temporal"))
def test_temporal_update_leaves_the_old_context_valid(kind, entry):
    temporal.check_old_context_stays_valid(entry)


# ---- audio_fusion (spec §3) ---------------------------------------------------------------------

@pytest.mark.parametrize("kind, entry", components("audio_fusion"))
def test_audio_fusion_is_the_identity_at_init(kind, entry):
    audio_fusion.check_identity_at_init(entry)


@pytest.mark.parametrize("kind, entry", components("audio_fusion"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_audio_fusion_keeps_shapes_and_dtype(kind, entry, dtype):
    audio_fusion.check_shapes_and_dtype(entry, dtype)


@pytest.mark.parametrize("kind, entry", components("audio_fusion"))
def test_audio_fusion_gradients_reach_every_parameter(kind, entry):
    audio_fusion.check_gradients(entry)


@pytest.mark.parametrize("kind, entry", components("audio_fusion"))
def test_audio_fusion_state_dict_round_trip(kind, entry):
    audio_fusion.check_state_dict(entry)


# ---- the other slots ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, entry", components("scheduler"))
def test_scheduler_runs_from_noise_to_data(kind, entry):
    check_scheduler(entry)


def with_defaults(entry):
    """Components whose options have no defaults (local weights) are tested with tiny saved models
    in their own test files; here only those that build from their defaults."""
    if required_options(entry):
        pytest.skip(f"needs {', '.join(required_options(entry))} (tested with tiny saved weights elsewhere)")
    return entry


@pytest.mark.parametrize("kind, entry", components("vae"))
def test_vae_follows_the_autoencoder_protocol(kind, entry):
    check_vae(with_defaults(entry))


@pytest.mark.parametrize("kind, entry", components("audio_encoder"))
def test_audio_encoder_gives_tokens_per_frame(kind, entry):
    check_audio_encoder(with_defaults(entry))


@pytest.mark.parametrize("kind, entry", components("image_encoder"))
def test_image_encoder_gives_one_embedding_per_image(kind, entry):
    check_image_encoder(with_defaults(entry))


@pytest.mark.parametrize("kind, entry", components("emotion_detector"))
def test_emotion_detector_labels_every_frame_within_its_label_set(kind, entry):
    check_emotion_detector(with_defaults(entry))


@pytest.mark.parametrize("kind, entry", components("task"))
def test_task_has_run(kind, entry, tmp_path):
    values = {name: tmp_path / name for name in required_options(entry)}  # tasks' required options are paths
    check_task(entry, values)


# ---- the kit itself: it must fail on broken components, with a message naming the promise -------

class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Scaling(torch.nn.Module):
    """A temporal module that is not the identity at init (it doubles its input)."""

    def __init__(self, config, channels: int):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.full((channels,), 2.0))

    def new_context(self, batch):
        return None

    def update_context(self, ctx, motion):
        return None

    def forward(self, x, ctx):
        return x * self.scale[:, None, None]


def test_kit_names_the_broken_promise():
    spec = ComponentSpec(name="scaling", config=_Options, factory=_Scaling, summary="doubles its input")
    with pytest.raises(AssertionError, match="identity"):
        check_temporal(spec)
    undocumented = ComponentSpec(name="scaling", config=_Options, factory=_Scaling, summary=" ")
    with pytest.raises(AssertionError, match="needs a summary"):
        check_documented(undocumented)


def test_kit_asks_for_options_without_defaults_and_runs_one_call_checks():
    weighted = next(entry for entry in REGISTRY.components["vae"].values() if required_options(entry))
    with pytest.raises(MissingOptions, match="needs option"):
        check_vae(weighted)
    before = torch.random.get_rng_state()
    assert check_component("scheduler", "flow_euler", REGISTRY) == ["check_documented", "check_scheduler"]
    assert check_component("dataset", "video_folder", REGISTRY) == ["check_documented", "check_buildable"]
    assert torch.equal(torch.random.get_rng_state(), before), "the kit must leave the caller's RNG as it was"
