"""Classifier-free guidance (spec I2, §10; ``memo_zoo/generate/guidance.py`` and its use in
``sampling.py``): the levels and their weights, the unconditional branch dropping every condition
in one batched forward, and the per-condition composition; the guidance interval (issue 19: the
conditional level alone outside ``cfg.interval``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from memo_zoo.data import media
from memo_zoo.generate.config import GenerateConfig, GuidanceConfig
from memo_zoo.generate.guidance import Level, conditional_levels, guidance_levels, levels_at
from memo_zoo.generate.inputs import clip_waveform, load_portrait
from memo_zoo.tasks.experiment_config import GenerationOptions
from tests.unit.test_generate import (CLIP, FPS, FRAMES, MOTION, NO_EMOTION, SAD, SIZE,  # noqa: F401
                                      OneEulerStep, config, inputs, make_model, one_thread, run, spy_forward,
                                      spy_motion_state, with_sampler)


def conditional_velocity(model, inputs, noise: torch.Tensor, emotion: int, state: bool = True) -> torch.Tensor:
    """The conditional prediction of clip 0 at t = 1, computed here from scratch (no guidance); with
    ``state=False`` the first clip has no memory (``first_memory: empty``)."""
    net = model.net
    with torch.no_grad():
        image = torch.from_numpy(load_portrait(inputs[0], SIZE, check_face=False)).permute(2, 0, 1)[None]
        image = image.float() / 127.5 - 1
        tokens = net.project_image(model.image_encoder.encode(image))
        latent = model.vae.encode(image)
        reference = net.encode_reference(latent, tokens)
        memory = net.motion_state(latent.unsqueeze(1).repeat(1, MOTION, 1, 1, 1), tokens) if state else None
        wave16k = media.read_audio(inputs[1])
        pad = model.audio_window
        audio = model.audio_encoder.encode(torch.from_numpy(clip_waveform(wave16k, 0, CLIP, pad, FPS))[None], CLIP,
                                           FPS, pad)
        return net(noise, torch.ones(1), tokens, audio, torch.tensor([emotion]), reference, memory)


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


# ---- guidance interval (issue 19) -------------------------------------------------------------


def record_frames(monkeypatch) -> list[np.ndarray]:
    """Every frame written to a video, in order (shared with test_generate_cache.py)."""
    written: list[np.ndarray] = []
    original_write = media.VideoWriter.write
    monkeypatch.setattr(media.VideoWriter, "write",
                        lambda self, frames: (written.append(np.array(frames)), original_write(self, frames))[1])
    return written


def test_interval_is_validated_and_left_out_of_the_dump_when_unset():
    assert GuidanceConfig(interval=[0.5, 1.0]).interval == (0.5, 1.0)
    for bad in ([0.8, 0.2], [-0.1, 1.0], [0.0, 1.5]):
        with pytest.raises(ValidationError, match=r"interval \[.*\] must be \[t_low, t_high\]"):
            GuidanceConfig(interval=bad)
    # Unset, it is not in the dumped options: the experiment's video keys stay as they were.
    assert "interval" not in GuidanceConfig().model_dump(mode="json")
    assert "interval" not in GenerationOptions().model_dump(mode="json")["cfg"]
    assert GuidanceConfig(interval=[0.2, 0.9]).model_dump(mode="json")["interval"] == [0.2, 0.9]
    assert GenerateConfig.model_validate({"image": "a.png", "audio": "a.wav", "cfg": {"interval": [0, 0.5]}}
                                         ).cfg.interval == (0.0, 0.5)


def test_levels_at_a_time_inside_and_outside_the_interval():
    cfg = GuidanceConfig(mode="per_condition", reference=2.0, audio=3.0, emotion=5.0, interval=[0.5, 1.0])
    assert levels_at(cfg, 0.75) == levels_at(cfg, 0.5) == levels_at(cfg, 1.0) == guidance_levels(cfg)
    assert levels_at(cfg, 0.5 - 1e-12) == guidance_levels(cfg)  # a float grid's rounding at the edge
    assert levels_at(cfg, 0.25) == conditional_levels() == [(Level(True, True, True), 1.0)]
    assert levels_at(cfg, 0.25, has_audio=False) == [(Level(True, False, True), 1.0)]
    assert levels_at(GuidanceConfig(), 0.0) == guidance_levels(GuidanceConfig())  # no interval: always guided


def test_outside_the_interval_only_the_conditional_level_is_evaluated(inputs, tmp_path, monkeypatch):
    model = make_model(steps=4)  # Euler at t = 1, 0.75, 0.5, 0.25
    forwards = spy_forward(monkeypatch, model.net)
    result = run(model, config(inputs, tmp_path, emotion="sad", cfg={"scale": 3.5, "interval": [0.5, 1.0]}))
    clips = len(forwards) // 4
    assert clips == math.ceil(FRAMES / CLIP)
    for k in range(clips):
        steps = forwards[4 * k:4 * k + 4]
        assert [float(call["timestep"][0]) for call in steps] == [1.0, 0.75, 0.5, 0.25]
        assert [call["latents"].shape[0] for call in steps] == [2, 2, 2, 1]  # guided inside, one pass outside
        single = steps[3]
        # The one pass is the conditional level: face tokens, the clip's audio, its emotion, reference on.
        assert single["mask"] is None and set(single["reference"])
        torch.testing.assert_close(single["tokens"][0], steps[0]["tokens"][steps[0]["mask"].tolist().index(True)])
        assert not bool(single["audio"].eq(0).all()) and single["emotion"].tolist() == [SAD]
        assert single["state"] is not steps[0]["state"]  # its own context (a batch of one)
    assert result.network_evaluations == clips * (3 * 2 + 1)
    # Its output is the conditional row of the guided forward on the same input (first clip: same context).
    single, guided = forwards[3], forwards[0]
    c = guided["mask"].tolist().index(True)
    batch = single["latents"].repeat(2, 1, 1, 1, 1)
    with torch.no_grad():
        out = model.net(batch, single["timestep"].repeat(2), guided["tokens"], guided["audio"], guided["emotion"],
                        guided["reference"], guided["state"], guided["mask"])
    torch.testing.assert_close(single["out"][0], out[c], rtol=1e-4, atol=1e-5)


def test_inside_the_interval_the_velocity_is_the_guided_one(inputs, tmp_path, monkeypatch):
    """Until the first step outside the interval the run is today's, bit for bit."""
    outputs = {}
    for name, cfg in (("plain", {"scale": 3.5}), ("interval", {"scale": 3.5, "interval": [0.5, 1.0]})):
        model = make_model(steps=4)
        forwards = spy_forward(monkeypatch, model.net)
        run(model, config(inputs, tmp_path, out=tmp_path / f"{name}.mp4", cfg=cfg))
        outputs[name] = forwards
    for plain, interval in zip(outputs["plain"][:3], outputs["interval"][:3]):
        assert torch.equal(plain["latents"], interval["latents"]) and torch.equal(plain["out"], interval["out"])


def test_a_full_interval_is_todays_guidance_bit_for_bit(inputs, tmp_path, monkeypatch):
    frames = record_frames(monkeypatch)
    runs = []
    per_condition = {"mode": "per_condition", "reference": 2.0, "audio": 3.0, "emotion": 5.0}
    for name, cfg in (("today", per_condition), ("full", {**per_condition, "interval": [0.0, 1.0]})):
        model = make_model(steps=3)
        forwards = spy_forward(monkeypatch, model.net)
        updates = spy_motion_state(monkeypatch, model.net)
        runs.append((forwards, updates, run(model, config(inputs, tmp_path, out=tmp_path / f"{name}.mp4", cfg=cfg))))
    (forwards, updates, result), (forwards2, updates2, result2) = runs
    assert len(forwards) == len(forwards2) and len(updates) == len(updates2)  # no conditional branch built
    assert all(torch.equal(a["out"], b["out"]) for a, b in zip(forwards, forwards2))
    assert len(frames) == 2 * FRAMES
    np.testing.assert_array_equal(np.stack(frames[:FRAMES]), np.stack(frames[FRAMES:]))
    assert result.network_evaluations == result2.network_evaluations == len(forwards) * 4


def test_no_guidance_needs_no_conditional_branch(inputs, tmp_path, monkeypatch):
    """Scale 1 is already the one conditional pass: an interval changes nothing."""
    model = make_model(steps=4)
    forwards = spy_forward(monkeypatch, model.net)
    updates = spy_motion_state(monkeypatch, model.net)
    result = run(model, config(inputs, tmp_path, cfg={"scale": 1.0, "interval": [0.5, 1.0]}))
    clips = math.ceil(FRAMES / CLIP)
    assert len(updates) == clips and all(call["latents"].shape[0] == 1 for call in forwards)
    assert result.network_evaluations == 4 * clips and result.evaluations_per_frame == 4.0
