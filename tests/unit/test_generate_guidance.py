"""Classifier-free guidance (spec I2, §10; ``memo_zoo/generate/guidance.py`` and its use in
``sampling.py``): the levels and their weights, the unconditional branch dropping every condition
in one batched forward, and the per-condition composition."""

from __future__ import annotations

import pytest
import torch

from memo_zoo.data import media
from memo_zoo.generate.config import GuidanceConfig
from memo_zoo.generate.guidance import Level, guidance_levels
from memo_zoo.generate.inputs import clip_waveform, load_portrait
from tests.unit.test_generate import (CLIP, FPS, MOTION, NO_EMOTION, SAD, SIZE, OneEulerStep, config,  # noqa: F401
                                      inputs, make_model, one_thread, run, spy_forward, spy_motion_state,
                                      with_sampler)


def conditional_velocity(model, inputs, noise: torch.Tensor, emotion: int) -> torch.Tensor:
    """The conditional prediction of clip 0 at t = 1, computed here from scratch (no guidance)."""
    net = model.net
    with torch.no_grad():
        image = torch.from_numpy(load_portrait(inputs[0], SIZE, check_face=False)).permute(2, 0, 1)[None]
        image = image.float() / 127.5 - 1
        tokens = net.project_image(model.image_encoder.encode(image))
        latent = model.vae.encode(image)
        reference = net.encode_reference(latent, tokens)
        state = net.motion_state(latent.unsqueeze(1).repeat(1, MOTION, 1, 1, 1), tokens)
        wave16k = media.read_audio(inputs[1])
        pad = model.audio_window
        audio = model.audio_encoder.encode(torch.from_numpy(clip_waveform(wave16k, 0, CLIP, pad, FPS))[None], CLIP,
                                           FPS, pad)
        return net(noise, torch.ones(1), tokens, audio, torch.tensor([emotion]), reference, state)


def test_joint_guidance_at_scale_one_is_the_conditional_prediction(inputs, tmp_path, monkeypatch):
    sampler = OneEulerStep()
    model = with_sampler(make_model(), sampler)
    forwards = spy_forward(monkeypatch, model.net)
    run(model, config(inputs, tmp_path, emotion="sad", cfg={"scale": 1.0}))
    assert all(call["latents"].shape[0] == 1 and call["mask"] is None for call in forwards)  # no uncond pass
    noise, guided = sampler.calls[0]
    assert torch.equal(guided, conditional_velocity(model, inputs, noise, SAD))


def test_unconditional_branch_drops_every_condition_and_is_batched(inputs, tmp_path, monkeypatch):
    sampler = OneEulerStep()
    model = with_sampler(make_model(), sampler)
    forwards = spy_forward(monkeypatch, model.net)
    updates = spy_motion_state(monkeypatch, model.net)
    run(model, config(inputs, tmp_path, emotion="sad"))  # default: joint, 3.5
    assert len(forwards) == len(sampler.calls) == 6  # one batched forward per denoising step
    call = forwards[0]
    assert call["latents"].shape[0] == 2 and torch.equal(call["latents"][0], call["latents"][1])
    mask = call["mask"].tolist()
    u, c = mask.index(False), mask.index(True)  # reference attention off in the unconditional row
    net = model.net
    with torch.no_grad():
        image = torch.from_numpy(load_portrait(inputs[0], SIZE, check_face=False)).permute(2, 0, 1)[None]
        embedding = model.image_encoder.encode(image.float() / 127.5 - 1)
        torch.testing.assert_close(call["tokens"][c], net.project_image(embedding)[0])
        torch.testing.assert_close(call["tokens"][u], net.project_image(torch.zeros_like(embedding))[0])  # no face
    assert bool(call["audio"][u].eq(0).all()) and not bool(call["audio"][c].eq(0).all())  # zero audio
    assert call["emotion"].tolist()[u] == NO_EMOTION and call["emotion"].tolist()[c] == SAD  # "no emotion"
    assert set(call["reference"]) and all(v.shape[0] == 2 for v in call["reference"].values())
    # The context of each row is built with that row's tokens (as training builds a dropped sample's).
    torch.testing.assert_close(updates[0]["tokens"], call["tokens"])
    # v = v_u + 3.5 (v_c - v_u), and the conditional row equals the conditional prediction alone.
    noise, guided = sampler.calls[0]
    out = call["out"]
    torch.testing.assert_close(guided, out[u:u + 1] + 3.5 * (out[c:c + 1] - out[u:u + 1]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[c:c + 1], conditional_velocity(model, inputs, noise, SAD), rtol=1e-4, atol=1e-5)


def test_per_condition_guidance_composes_reference_audio_emotion(inputs, tmp_path, monkeypatch):
    sampler = OneEulerStep()
    model = with_sampler(make_model(), sampler)
    forwards = spy_forward(monkeypatch, model.net)
    cfg = {"mode": "per_condition", "reference": 2.0, "audio": 3.0, "emotion": 5.0}
    run(model, config(inputs, tmp_path, emotion="sad", cfg=cfg))
    call = forwards[0]
    assert call["latents"].shape[0] == 4
    # Levels u, r, ra, c: which conditions each row keeps.
    assert call["mask"].tolist() == [False, True, True, True]
    assert [bool(a.eq(0).all()) for a in call["audio"]] == [True, True, False, False]
    assert call["emotion"].tolist() == [NO_EMOTION, NO_EMOTION, NO_EMOTION, SAD]
    u, r, ra, c = call["out"].split(1)
    expected = u + 2.0 * (r - u) + 3.0 * (ra - r) + 5.0 * (c - ra)
    torch.testing.assert_close(sampler.calls[0][1], expected, rtol=1e-5, atol=1e-5)


def test_guidance_levels_telescope():
    joint = guidance_levels(GuidanceConfig(scale=3.5))
    assert joint == [(Level(False, False, False), -2.5), (Level(True, True, True), 3.5)]
    equal = guidance_levels(GuidanceConfig(mode="per_condition", scale=3.5))
    assert equal == joint  # equal per-condition scales = joint guidance
    assert guidance_levels(GuidanceConfig(scale=1.0)) == [(Level(True, True, True), 1.0)]
    mixed = guidance_levels(GuidanceConfig(mode="per_condition", reference=2.0, audio=4.0, emotion=4.0))
    assert [lv for lv, _ in mixed] == [Level(False, False, False), Level(True, False, False), Level(True, True, True)]
    assert sum(w for _, w in mixed) == pytest.approx(1.0)
    # No audio encoder: the reference-only and reference+audio levels are one branch.
    no_audio = guidance_levels(GuidanceConfig(mode="per_condition", reference=2.0, audio=3.0, emotion=5.0), False)
    assert [lv for lv, _ in no_audio] == [Level(False, False, False), Level(True, False, False),
                                          Level(True, False, True)]
