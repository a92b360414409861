"""The first clip's memory (``GenerateConfig.first_memory``): the reference repeated (spec §10) or
empty, as motion dropout trains it (L6). With it empty the first clip is denoised with no temporal
context at all, and later clips fold the generated frames into a fresh memory; the option at its
default leaves the experiment task's video keys as they were."""

from __future__ import annotations

import torch

from memo_zoo.generate.config import GenerateConfig
from memo_zoo.tasks.experiment_config import GenerationOptions
from tests.unit.test_generate import (CLIP, FRAMES, MOTION, SAD, OneEulerStep, config, inputs,  # noqa: F401
                                      make_model, one_thread, run, spy_forward, spy_motion_state, with_sampler)
from tests.unit.test_generate_guidance import conditional_velocity


def test_an_empty_first_memory_denoises_the_first_clip_without_context(inputs, tmp_path, monkeypatch):
    sampler = OneEulerStep()
    model = with_sampler(make_model(), sampler)
    forwards = spy_forward(monkeypatch, model.net)
    updates = spy_motion_state(monkeypatch, model.net)
    run(model, config(inputs, tmp_path, emotion="sad", cfg={"scale": 1.0}, first_memory="empty"))
    clips = -(-FRAMES // CLIP)
    # No context is built for the first clip: one memory update per finished clip but the last,
    # the first of them starting from nothing.
    assert len(updates) == clips - 1 and updates[0]["before"] is None
    assert updates[0]["motion"].shape[1] == CLIP
    steps = len(forwards) // clips
    assert all(call["state"] is None for call in forwards[:steps])
    assert all(call["state"] is not None for call in forwards[steps:])
    # The first velocity is the conditional prediction with no motion state.
    noise, velocity = sampler.calls[0]
    with torch.no_grad():
        without = conditional_velocity(model, inputs, noise, SAD, state=False)
        with_reference = conditional_velocity(model, inputs, noise, SAD)
    torch.testing.assert_close(velocity, without)
    assert not torch.allclose(velocity, with_reference)


def test_the_reference_memory_is_the_default_and_builds_the_first_context(inputs, tmp_path, monkeypatch):
    model = with_sampler(make_model(), OneEulerStep())
    updates = spy_motion_state(monkeypatch, model.net)
    run(model, config(inputs, tmp_path, emotion="sad", cfg={"scale": 1.0}))
    assert updates[0]["before"] is None and updates[0]["motion"].shape[1] == MOTION  # the reference, repeated
    assert GenerateConfig.model_fields["first_memory"].default == "reference"


def test_the_default_leaves_the_generation_keys_unchanged():
    # generation_key hashes these dumps: an option at its default must not rename existing video sets.
    assert "first_memory" not in GenerationOptions().model_dump(mode="json")
    assert GenerationOptions(first_memory="empty").model_dump(mode="json")["first_memory"] == "empty"
