"""Generation (spec §6 I1-I4, T6, §10) with a tiny random MemoNet on 32 px frames: the pipeline.

The network is a few-thousand-parameter copy of the tiny preset (pixel VAE, patch 8: 192 x 4 x 4
latents), with random log_mel and conv encoders and the ``fixed`` emotion detector. Spies on the
network's ``forward`` / ``motion_state``, on the sampler and on ``VideoWriter.write`` check the
per-clip flow: the frame count and muxed audio (I1, I4), one context update per clip from the
clip's clean latents (T6, §10), streaming, determinism and the step override. Guidance, emotion,
inputs and checkpoints have their own files (``test_generate_{guidance,emotion,inputs,loading}.py``),
named for the modules of ``memo_zoo/generate/`` they test.

``make_recipe``/``make_model``/``config``/``run``/``write_wav``/``portrait`` and the spies are shared
with those files, ``tests/unit/test_reliability_generate.py`` and ``tests/e2e/test_generate_cli.py``.
"""

from __future__ import annotations

import math
import warnings
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memo_zoo.data import media
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.config import GenerateConfig, GuidanceConfig
from memo_zoo.generate.inputs import load_portrait
from memo_zoo.generate.loading import load_generator_model
from memo_zoo.generate.pipeline import generate_video
from memo_zoo.generate.sampling import _to_uint8
from memo_zoo.generate.warning import GenerationWarning
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.loader import validate_document
from tests import data_fixtures as fx

REGISTRY = load_registry(disabled=())
NETWORK = {"block_out_channels": [16, 32], "attention_head_dim": 2, "cross_attention_dim": 16,
           "latent_channels": 192, "audio_tokens": 4, "audio_dim": 8, "image_tokens": 2, "image_embed_dim": 8}
SIZE, FPS, CLIP, MOTION = 32, 25.0, 4, 3
SECONDS = 0.9  # 23 frames at 25 fps: 6 clips of 4, the last one cut to 3
FRAMES = math.ceil(SECONDS * FPS)
NO_EMOTION = len(PAPER_LABELS)
HAPPY, SAD, ANGRY, SURPRISED = (PAPER_LABELS.index(n) for n in ("happy", "sad", "angry", "surprised"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets run faster on one intra-op thread than on two shared cores, and steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_recipe(steps: int = 2, detector: dict | None = None, network: dict | None = None, **extra) -> dict:
    """A recipe document for the tiny generation network (any task; smoke by default)."""
    document = {
        "name": "tiny-generate", "seed": 7, "task": {"kind": "smoke"},
        "model": {"network": {**NETWORK, **(network or {})},
                  "temporal": {"kind": "linear_memory", "heads": 2},
                  "audio_fusion": {"kind": "multimodal_attention", "heads": 2},
                  "audio_encoder": {"kind": "log_mel", "token_count": 4, "token_dim": 8, "hidden": 16, "n_mels": 16,
                                    "window": 1},
                  "image_encoder": {"kind": "conv", "embed_dim": 8, "channels": [8]},
                  "vae": {"kind": "pixel", "patch_size": 8}},
        "scheduler": {"kind": "flow_euler", "steps": steps},
        **extra,
    }
    if detector is not None:
        document["emotion_detector"] = detector
    return document


def make_model(registry=REGISTRY, checkpoint=None, **recipe_options):
    recipe = validate_document(make_recipe(**recipe_options), registry, "test")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerationWarning)  # "random weights"
        model = load_generator_model(checkpoint, recipe, registry)
    # Move the zero-initialised output projections (A6) off zero, so every condition matters.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    """Mono 16-bit PCM WAV (the stdlib writer: no codec involved)."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def speech_like(seconds: float = SECONDS, rate: int = 22_050) -> np.ndarray:
    """A 220 Hz tone whose loudness moves at 4 Hz (syllable rate), so every frame's audio differs."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def portrait(path: Path) -> Path:
    """A 48 x 40 random-noise 'portrait' (no face in it: generation warns and goes on)."""
    pixels = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    return portrait(tmp_path / "face.png"), write_wav(tmp_path / "speech.wav", speech_like(), 22_050)


def config(inputs, tmp_path, **options) -> GenerateConfig:
    image, audio = inputs
    base = {"image": image, "audio": audio, "out": tmp_path / "out.mp4", "size": SIZE, "fps": FPS,
            "clip_frames": CLIP, "motion_frames": MOTION, "emotion": "happy"}
    return GenerateConfig(**{**base, **options})


def run(model, cfg: GenerateConfig):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerationWarning)  # the noise portrait has no face
        return generate_video(model, cfg, progress=False)


# ---- spies --------------------------------------------------------------------------------------


def spy_forward(monkeypatch, net) -> list[dict]:
    """Record every Diffusion Net call (its arguments and output)."""
    calls: list[dict] = []
    original = net.forward

    def forward(latents, timestep, image_tokens, audio_tokens=None, emotion=None, reference=None, state=None,
                reference_mask=None):
        out = original(latents, timestep, image_tokens, audio_tokens, emotion, reference, state, reference_mask)
        calls.append({"latents": latents.clone(), "timestep": timestep, "tokens": image_tokens.clone(),
                      "audio": None if audio_tokens is None else audio_tokens.clone(), "emotion": emotion.clone(),
                      "reference": reference, "state": state, "mask": reference_mask, "out": out.clone()})
        return out

    monkeypatch.setattr(net, "forward", forward)
    return calls


def spy_motion_state(monkeypatch, net) -> list[dict]:
    calls: list[dict] = []
    original = net.motion_state

    def motion_state(motion_latents, image_tokens, state=None):
        new = original(motion_latents, image_tokens, state)
        calls.append({"motion": motion_latents.clone(), "tokens": image_tokens.clone(), "before": state,
                      "after": new})
        return new

    monkeypatch.setattr(net, "motion_state", motion_state)
    return calls


class OneEulerStep:
    """A sampler that records the guided velocity it is given: one Euler step from t = 1 to 0."""

    evaluations_per_step = 1

    def __init__(self):
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def timesteps(self) -> torch.Tensor:
        return torch.tensor([1.0, 0.0], dtype=torch.float64)

    def step(self, sample, velocity, t, t_next):
        return sample + (t_next - t) * velocity

    def solve(self, sample, velocity_fn):
        velocity = velocity_fn(sample, 1.0)
        self.calls.append((sample.clone(), velocity.clone()))
        return self.step(sample, velocity, 1.0, 0.0)


class SamplerRegistry:
    """The registry, except that the scheduler slot always builds ``sampler``."""

    def __init__(self, registry, sampler):
        self.registry, self.sampler = registry, sampler

    def build(self, slot, config, **kwargs):
        return self.sampler if slot == "scheduler" else self.registry.build(slot, config, **kwargs)


def with_sampler(model, sampler):
    return replace(model, registry=SamplerRegistry(model.registry, sampler))


# ---- I1, I4: frames, rate, audio ----------------------------------------------------------------


def test_video_has_ceil_seconds_x_fps_frames_and_the_input_audio(inputs, tmp_path):
    result = run(make_model(), config(inputs, tmp_path))
    assert (result.frames, result.clips, result.video_fps) == (FRAMES, 6, FPS)
    frames, fps = media.read_frames(result.path)
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and fps == FPS
    info = media.probe(result.path)
    assert info.has_audio and info.audio_rate == 22_050  # muxed at the source's rate, not 16 kHz
    heard = media.read_audio(result.path)
    assert len(heard) / 16_000 == pytest.approx(SECONDS, abs=0.05)  # AAC frames: ~46 ms slack
    original = media.read_audio(inputs[1])
    n = min(len(heard), len(original)) - 2000
    assert np.corrcoef(heard[1000:n], original[1000:n])[0, 1] > 0.9  # the input's sound, in sync
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".mp4"] == ["out.mp4"]  # no temp left


def test_any_audio_format_and_30_fps(tmp_path):
    image = portrait(tmp_path / "face.png")
    audio = fx.write_audio(tmp_path / "song.m4a", seconds=0.5, rate=44_100, channels=2)  # AAC, stereo
    cfg = GenerateConfig(image=image, audio=audio, out=tmp_path / "o.mp4", size=SIZE, fps=30, clip_frames=CLIP,
                         motion_frames=MOTION, emotion="neutral", cfg=GuidanceConfig(scale=1.0))
    result = run(make_model(), cfg)
    expected = math.ceil(len(media.read_audio(audio)) / 16_000 * 30)
    assert result.frames == expected == len(media.read_frames(result.path)[0])
    assert media.probe(result.path).audio_rate == 44_100


def test_max_seconds_caps_the_video(inputs, tmp_path):
    result = run(make_model(), config(inputs, tmp_path, max_seconds=0.3, cfg={"scale": 1.0}))
    assert result.frames == math.ceil(0.3 * FPS) == len(media.read_frames(result.path)[0])
    assert len(media.read_audio(result.path)) / 16_000 == pytest.approx(0.3, abs=0.05)


# ---- T6, §10: the temporal context ---------------------------------------------------------------


def test_context_starts_from_the_reference_and_is_updated_once_per_clip_from_clean_latents(
        inputs, tmp_path, monkeypatch):
    model = make_model()
    forwards = spy_forward(monkeypatch, model.net)
    updates = spy_motion_state(monkeypatch, model.net)
    written: list[np.ndarray] = []
    original_write = media.VideoWriter.write
    monkeypatch.setattr(media.VideoWriter, "write",
                        lambda self, frames: (written.append(np.array(frames)), original_write(self, frames))[1])
    run(model, config(inputs, tmp_path))  # joint CFG 3.5: two levels, 2 Euler steps per clip

    clips = math.ceil(FRAMES / CLIP)
    assert len(updates) == clips  # the first clip's context + one update after each clip but the last
    assert len(forwards) == 2 * clips
    for k in range(clips):
        # Every denoising step of clip k reads the state made by update k, never another one.
        assert all(call["state"] is updates[k]["after"] for call in forwards[2 * k:2 * k + 2])
        assert updates[k]["before"] is (None if k == 0 else updates[k - 1]["after"])
    # §10: first clip's past = the reference latent repeated motion_frames times (each level).
    image = torch.from_numpy(load_portrait(inputs[0], SIZE, check_face=False)).permute(2, 0, 1)[None]
    reference = model.vae.encode(image.float() / 127.5 - 1)
    first = updates[0]["motion"]
    assert first.shape == (2, MOTION, 192, 4, 4)
    assert torch.equal(first, reference.unsqueeze(1).expand(2, MOTION, -1, -1, -1))
    # T6: the update after clip k is made from clip k's clean latents: they decode to its frames.
    frames = np.stack(written)  # one (H, W, 3) frame per write
    for k in range(1, clips):
        motion = updates[k]["motion"]
        assert motion.shape == (2, CLIP, 192, 4, 4) and torch.equal(motion[0], motion[1])
        np.testing.assert_array_equal(_to_uint8(model.vae.decode(motion[0])), frames[(k - 1) * CLIP:k * CLIP])


def test_frames_are_streamed_clip_by_clip(inputs, tmp_path, monkeypatch):
    """Each clip's frames reach the encoder before the next clip is denoised (constant memory)."""
    model = make_model()
    forwards = spy_forward(monkeypatch, model.net)
    at_write: list[int] = []
    original_write = media.VideoWriter.write
    monkeypatch.setattr(media.VideoWriter, "write",
                        lambda self, frames: (at_write.append(len(forwards)), original_write(self, frames))[1])
    run(model, config(inputs, tmp_path))
    assert len(at_write) == FRAMES
    # Frame i is written after exactly the 2 steps of its own clip and of the clips before it.
    assert at_write == [2 * (i // CLIP + 1) for i in range(FRAMES)]


# ---- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_video_other_seed_other_video(inputs, tmp_path):
    model = make_model()
    first = run(model, config(inputs, tmp_path, out=tmp_path / "a.mp4", seed=3))
    again = run(model, config(inputs, tmp_path, out=tmp_path / "b.mp4", seed=3))
    other = run(model, config(inputs, tmp_path, out=tmp_path / "c.mp4", seed=4))
    a, b, c = (media.read_frames(r.path)[0] for r in (first, again, other))
    np.testing.assert_array_equal(a, b)
    assert first.path.read_bytes() == again.path.read_bytes()
    assert not np.array_equal(a, c)


def test_recipe_seed_is_the_default_and_the_scheduler_sets_the_step_count(inputs, tmp_path, monkeypatch):
    model = make_model(steps=1)
    forwards = spy_forward(monkeypatch, model.net)
    run(model, config(inputs, tmp_path, max_seconds=0.1))
    assert len(forwards) == 1  # one clip, the recipe scheduler's one step: the count has one home
    default = run(model, config(inputs, tmp_path, out=tmp_path / "d.mp4", max_seconds=0.1))
    seeded = run(model, config(inputs, tmp_path, out=tmp_path / "s.mp4", max_seconds=0.1, seed=7))
    np.testing.assert_array_equal(media.read_frames(default.path)[0], media.read_frames(seeded.path)[0])


# ---- device --------------------------------------------------------------------------------------


def test_device_follows_the_config_then_memo_zoo_device_and_cuda_must_exist(inputs, tmp_path, monkeypatch):
    from memo_zoo.generate.pipeline import device_and_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("MEMO_ZOO_DEVICE", "cpu")
    assert device_and_dtype(config(inputs, tmp_path)) == (torch.device("cpu"), torch.float32)
    assert device_and_dtype(config(inputs, tmp_path, dtype="bfloat16")) == (torch.device("cpu"), torch.bfloat16)
    for asked in ({"device": "cuda:1"}, {"device": None}):
        monkeypatch.setenv("MEMO_ZOO_DEVICE", "cuda:1")
        with pytest.raises(MemoZooError, match="device 'cuda:1' was asked for but CUDA is not available"):
            device_and_dtype(config(inputs, tmp_path, **asked))


# ---- frame size ------------------------------------------------------------------------------------


def test_a_size_the_network_cannot_take_is_refused(inputs, tmp_path):
    with pytest.raises(MemoZooError, match="size 40 px"):
        run(make_model(), config(inputs, tmp_path, size=40))
