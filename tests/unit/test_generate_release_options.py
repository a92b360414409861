"""Generation options that reproduce the released MEMO pipeline (issue 18 item 6), on the tiny zoo model.

``noise: sequential`` (one generator seeded once, drawn clip after clip in the (1, c, F, h, w)
layout), ``motion_source: decoded`` (the next clip's past frames are the last frames decoded,
clamped and encoded again, README Q17), ``emotion_ties: smallest`` (torch.mode, Q15) and the
``--weights`` flag of ``memo-zoo generate``. The released network itself runs through the same
sampler in ``tests/unit/released/test_generation_parity.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import memo_zoo.cli.registry as cli_registry
from memo_zoo.cli.app import main
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.emotion.segments import segment_labels
from memo_zoo.generate.emotion import clip_emotions, smallest_modes
from tests.unit.test_generate import (CLIP, FPS, FRAMES, MOTION, REGISTRY, OneEulerStep, config, inputs,  # noqa: F401
                                      make_model, make_recipe, run, spy_motion_state, with_sampler)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sequential_noise_is_one_generator_drawn_clip_after_clip(inputs, tmp_path):
    sampler = OneEulerStep()
    model = with_sampler(make_model(), sampler)
    run(model, config(inputs, tmp_path, noise="sequential", seed=7))
    generator = torch.Generator().manual_seed(7)
    assert len(sampler.calls) == math.ceil(FRAMES / CLIP)
    for noise, _ in sampler.calls:
        _, frames, channels, h, w = noise.shape
        expected = torch.randn((1, channels, frames, h, w), generator=generator).transpose(1, 2)
        assert torch.equal(noise, expected)


def test_per_clip_noise_does_not_depend_on_earlier_clips(inputs, tmp_path):
    per_clip, sequential = OneEulerStep(), OneEulerStep()
    run(with_sampler(make_model(), per_clip), config(inputs, tmp_path, seed=7))
    run(with_sampler(make_model(), sequential), config(inputs, tmp_path, seed=7, noise="sequential"))
    assert not torch.equal(per_clip.calls[1][0], sequential.calls[1][0])


def test_decoded_motion_source_re_encodes_the_last_decoded_frames(inputs, tmp_path, monkeypatch):
    sampler = OneEulerStep()
    model = with_sampler(make_model(), sampler)
    updates = spy_motion_state(monkeypatch, model.net)
    run(model, config(inputs, tmp_path, motion_source="decoded"))
    clips = math.ceil(FRAMES / CLIP)
    assert len(updates) == clips
    for k in range(1, clips):
        noise, velocity = sampler.calls[k - 1]
        latents = noise - velocity  # the one Euler step from t = 1 to 0
        pixels = model.vae.decode(latents[0, -MOTION:])
        assert float(pixels.abs().max()) > 1.0  # so the clamp below is exercised
        expected = model.vae.encode(pixels.clamp(-1, 1))
        motion = updates[k]["motion"]
        assert motion.shape[:2] == (2, MOTION)
        torch.testing.assert_close(motion[0], expected)
        assert torch.equal(motion[0], motion[1])  # every guidance level folds the same frames


def test_smallest_ties_take_the_smallest_label_first_ties_the_first_seen():
    frames = torch.tensor([5, 5, 2, 2, 7, 3, 3, 7, 1])
    assert smallest_modes(frames, 4).tolist() == [2, 3, 1]
    assert segment_labels(frames, 4).tolist() == [5, 7, 1]
    assert smallest_modes(torch.tensor([4, 4, 4, 0]), 4).tolist() == [4]  # no tie: the mode


def test_emotion_ties_option_reaches_the_clip_labels(inputs, tmp_path):
    model = make_model()
    low, high = PAPER_LABELS[1], PAPER_LABELS[4]
    half = CLIP / 2 / FPS
    schedule = [{"start_s": k * CLIP / FPS, "end_s": k * CLIP / FPS + half, "label": high} for k in range(2)] + \
               [{"start_s": k * CLIP / FPS + half, "end_s": (k + 1) * CLIP / FPS, "label": low} for k in range(2)]
    frames = 2 * CLIP
    audio = np.zeros(int(frames / FPS * 16_000), dtype=np.float32)
    first, _ = clip_emotions(model, config(inputs, tmp_path, emotion=schedule), audio, FPS, frames)
    smallest, _ = clip_emotions(model, config(inputs, tmp_path, emotion=schedule, emotion_ties="smallest"), audio,
                                FPS, frames)
    assert first.tolist() == [PAPER_LABELS.index(high)] * 2
    assert smallest.tolist() == [PAPER_LABELS.index(low)] * 2


def test_the_weights_flag_sets_model_network_weights(inputs, tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.setattr(cli_registry, "registry", lambda: REGISTRY)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(make_recipe(steps=1)))
    image, audio = inputs
    code = main(["generate", "--recipe", str(recipe), "--weights", "memoavatar/memo", "--image", str(image),
                 "--audio", str(audio)])
    err = capsys.readouterr().err
    assert code == 2 and "model.network" in err and "only preset memo_released loads" in err


def test_the_weights_flag_follows_the_release_wherever_the_recipe_names_it():
    from memo_zoo.cli.generate import release_overrides

    document = {"model": {"network": {"preset": "memo_released", "weights": "memoavatar/memo"},
                          "audio_encoder": {"kind": "wav2vec2", "projector": "memoavatar/memo"}},
                "emotion_detector": {"kind": "emotion2vec_released", "release": "other/release"}}
    assert release_overrides(document, "/data/memo") == ['model.network.weights="/data/memo"',
                                                         'model.audio_encoder.projector="/data/memo"']
    assert release_overrides({"model": {}}, "x") == ['model.network.weights="x"']


def test_vocal_separation_feeds_the_audio_tokens_only(inputs, tmp_path, monkeypatch):
    """``vocal_separator``: the audio encoder hears the separated vocals (the release's inference);
    the emotion labels and the muxed track keep the original audio."""
    import memo_zoo.generate.pipeline as pipeline
    from memo_zoo.perception.configs import VocalSeparatorConfig

    seen: dict[str, np.ndarray] = {}
    sampler_init = pipeline.ClipSampler.__init__

    def separate(audio, rate, options):
        seen["separated_from"] = audio.copy()
        return np.zeros_like(audio)

    def capture(self, model, config, portrait, audio, *args, **kwargs):
        seen["tokens_from"] = audio
        sampler_init(self, model, config, portrait, audio, *args, **kwargs)

    monkeypatch.setattr(pipeline, "separate_vocals", separate)
    monkeypatch.setattr(pipeline.ClipSampler, "__init__", capture)
    separator = VocalSeparatorConfig(weights=str(tmp_path / "Kim_Vocal_2.onnx"))
    run(make_model(), config(inputs, tmp_path, vocal_separator=separator))
    assert np.abs(seen["separated_from"]).max() > 0 and not np.any(seen["tokens_from"])
