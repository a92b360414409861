"""Golden case e (the released pipeline's denoising loop, 2 clips x 3 steps, CFG) through the zoo's
``ClipSampler`` -- not a hand-written loop.

The released network (``model.network: {preset: memo_released, weights: <tiny release>,
released_quirks: true}``) is driven by the zoo's sampler with the options that make it the
release's loop: the flow_euler grid ``sigma_min`` (Q14), ``noise: sequential`` (one generator seeded
once, drawn clip after clip in the (1, c, F, h, w) layout), ``motion_source: latents`` (case e's
identity VAE works in latent space) and ``emotion_ties: smallest`` (Q15).

Stand-ins, as in the case: the VAE is the identity with the 0.18215 latent scale (the portrait's
latent is the case's ``ref_frame_latent``), the image encoder gives the case's ``face_emb`` and the
audio encoder the case's per-clip wav2vec2 windows ``audio_emb[16k:16k+16]`` through the tiny
release's ``audio_proj`` (the ``wav2vec2`` encoder's released ``projector``). Sizes, clips, steps,
seed, guidance scale and the grid come from the case JSON.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Literal

import numpy as np
import pytest
import torch

from memo_zoo.generate.config import GenerateConfig
from memo_zoo.generate.emotion import smallest_modes
from memo_zoo.generate.loading import GeneratorModel
from memo_zoo.generate.sampling import ClipSampler
from memo_zoo.model.memo_net import build_network
from memo_zoo.recipe.network import RELEASED, NetworkConfig
from memo_zoo_plugins.audio_encoder.released_projector import load_token_projector
from memo_zoo_plugins.scheduler.flow_euler import FlowEulerConfig, FlowEulerSampler
from tests.unit.released.helpers import GOLDEN, TINY
from tests.unit.released.zoo_factories import factories

pytestmark = pytest.mark.usefixtures("one_thread")

CASE = GOLDEN.case("e_pipeline_loop")
FPS = 25.0  # any rate: the stand-in audio encoder reads the case's windows, not the waveform


def _driver(pattern: str) -> str:
    found = re.search(pattern, CASE.meta["driver"])
    assert found, f"{CASE.stem}.json: no {pattern!r} in driver"
    return found.group(1)


SEED = int(_driver(r"manual_seed\((\d+)\)"))
VAE_FACTOR = int(_driver(r"vae_scale_factor (\d+)"))
SCALE = float(_driver(r"guidance_scale=([0-9.]+)"))
LATENT_SCALE = float(re.search(r"/ ([0-9.]+)", CASE.meta["per_clip_driver"]).group(1))
CLIPS = sorted({call["clip"] for call in CASE.meta["sequence"]})
STEPS = sorted({call["step"] for call in CASE.meta["sequence"]})
FRAMES = CASE["clip0.initial_noise"].shape[2]  # (1, c, F, h, w)


class RecordingEuler(FlowEulerSampler):
    """flow_euler that records what each clip starts from and each step's result (the pipeline callback)."""

    def __init__(self, config, log: dict):
        super().__init__(config)
        self.log = log

    def solve(self, sample, velocity_fn):
        self.log.setdefault("initial", []).append(sample.clone())
        return super().solve(sample, velocity_fn)

    def step(self, sample, velocity, t, t_next):
        out = super().step(sample, velocity, t, t_next)
        self.log.setdefault("steps", []).append(out.clone())
        return out


class SchedulerKind(FlowEulerConfig):
    kind: Literal["flow_euler"] = "flow_euler"


class IdentityVAE:
    """Case e's VAE: encode = identity, decode = identity, with the pipeline's latent scale. The
    portrait (3 channels) encodes to the case's reference latent, where the case starts."""

    latent_channels = CASE["ref_frame_latent"].shape[1]
    downsample = VAE_FACTOR

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[1] == 3:
            return CASE["ref_frame_latent"].to(frames.device)
        return frames * LATENT_SCALE

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / LATENT_SCALE


class CaseFace:
    embed_dim = CASE["face_emb"].shape[1]

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return CASE["face_emb"].to(image.device)


class CaseAudio:
    """Per clip k: the released projector on the case's windows of frames 16k .. 16k + 15."""

    def __init__(self):
        self.projector, part = load_token_projector(TINY)
        self.token_count, self.token_dim = int(part["context_tokens"]), int(part["output_dim"])
        self.calls = 0

    def encode(self, waveform: torch.Tensor, num_frames: int, fps: float, pad_frames: int = 0) -> torch.Tensor:
        first = self.calls * num_frames
        self.calls += 1
        return self.projector(CASE["audio_emb"][first:first + num_frames][None])


@pytest.fixture(scope="module")
def run() -> dict:
    network = NetworkConfig(preset=RELEASED, weights=str(TINY), released_quirks=True)
    net = build_network(SimpleNamespace(network=network, temporal=None, audio_fusion=None), factories)
    net.requires_grad_(False)
    timesteps = sorted({call["timestep"] for call in CASE.meta["sequence"]}, reverse=True)
    scheduler = SchedulerKind(steps=len(STEPS), sigma_min=timesteps[-1] / 1000.0)
    log: dict = {"calls": []}
    registry = SimpleNamespace(build=lambda slot, config: RecordingEuler(config, log))
    audio = CaseAudio()
    model = GeneratorModel(net=net, vae=IdentityVAE(), image_encoder=CaseFace(), audio_encoder=audio,
                           scheduler=scheduler, registry=registry, seed=SEED)
    net.register_forward_hook(lambda module, args, out: log["calls"].append((args, out.detach().clone())))
    config = GenerateConfig(image="face.png", audio="speech.wav", cfg={"scale": SCALE}, clip_frames=FRAMES,
                            motion_frames=FRAMES, noise="sequential", motion_source="latents",
                            emotion_ties="smallest", seed=SEED)
    h, w = CASE["ref_frame_latent"].shape[-2:]
    portrait = np.zeros((h * IdentityVAE.downsample, w * IdentityVAE.downsample, 3), dtype=np.uint8)
    frames = len(CLIPS) * FRAMES
    waveform = np.zeros(int(frames / FPS * 16000), dtype=np.float32)
    emotions = smallest_modes(CASE["audio_emotion"], FRAMES)
    sampler = ClipSampler(model, config, portrait, waveform, FPS, frames, emotions, net.emotion_classes, SEED,
                          torch.float32)
    log["frames"] = list(sampler)
    log["emotions"] = emotions
    log["null_emotion"] = net.emotion_classes
    log["audio_projector"] = audio.projector
    return log


def test_the_run_has_the_case_s_shape(run):
    assert len(run["frames"]) == len(CLIPS) * FRAMES
    assert len(run["calls"]) == len(CASE.meta["sequence"])
    assert len(run["steps"]) == len(CASE.meta["sequence"])


@pytest.mark.parametrize("clip", CLIPS)
def test_clip_conditioning_is_the_release_s(run, clip):
    """The per-clip inputs as the diffusion net received them in the release."""
    args, _ = run["calls"][clip * len(STEPS)]
    latents, t, tokens, audio, emotion, reference, state, reference_mask = args
    atol, rtol = GOLDEN.tolerance(CASE)
    torch.testing.assert_close(tokens, CASE[f"clip{clip}.encoder_hidden_states"], atol=atol, rtol=rtol)
    torch.testing.assert_close(audio, CASE[f"clip{clip}.audio_embedding_cfg"], atol=atol, rtol=rtol)
    assert emotion.tolist() == CASE[f"clip{clip}.audio_emotion_cfg"].tolist()
    assert (~reference_mask).repeat_interleave(FRAMES).tolist() == CASE[f"clip{clip}.uc_mask"].tolist()
    torch.testing.assert_close(run["initial"][clip], CASE[f"clip{clip}.initial_noise"].transpose(1, 2),
                               atol=0, rtol=0)


@pytest.mark.parametrize("index", range(len(CASE.meta["sequence"])))
def test_each_step_matches_the_release(run, index):
    call = CASE.meta["sequence"][index]
    name = f"clip{call['clip']}.step{call['step']}"
    args, out = run["calls"][index]
    # Q14: the zoo's flow time t reaches the network as the release's float32 timestep, exactly
    assert (args[1].float() * 1000).tolist() == [float(CASE[f"{name}.timestep"])] * args[1].numel()
    atol, rtol = GOLDEN.tolerance(CASE)
    torch.testing.assert_close(out.transpose(1, 2), CASE[f"{name}.noise_pred_cfg_batch"], atol=atol, rtol=rtol)
    torch.testing.assert_close(run["steps"][index].transpose(1, 2), CASE[f"{name}.latents_out"], atol=atol,
                               rtol=rtol)


@pytest.mark.parametrize("clip", CLIPS)
def test_final_latents_match_the_release(run, clip):
    atol, rtol = GOLDEN.tolerance(CASE)
    last = run["steps"][(clip + 1) * len(STEPS) - 1]
    torch.testing.assert_close(last.transpose(1, 2), CASE[f"clip{clip}.final_latents"], atol=atol, rtol=rtol)
