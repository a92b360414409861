"""Time of one MEMO training step and one denoising forward (spec §1, T5, T6, §10 speed).

For each case it builds a ``MemoNet`` (random weights; linear_memory temporal + multimodal audio
fusion, MEMO's defaults) and measures the median wall time of

- train step:   image projection + Reference Net on the reference (A2) + Reference Net on the
                motion frames and memory update (T5) + Diffusion Net on F noisy frames + MSE on
                the velocity (L1) + backward;
- per clip:     reference + motion-state update without gradients, once per clip (T6);
- denoise step: one Diffusion Net forward reading that reference and state, without gradients
                (paid at every sampler step; 20 steps x 2 CFG branches per clip in §10).

Cases: ``tiny`` on CPU at 64 px, as SD-like latents (4 x 8 x 8, the preset's default) and, with
``--pixel``, as pixel-VAE latents (3 x 64 x 64); ``sd15`` (bf16 autocast, 512 px = 4 x 64 x 64
latents, gradient checkpointing for the training step) only when CUDA is available. B = 1,
F = 16 frames, 16 motion frames. Prints a markdown table.

    .venv/bin/python benchmarks/memo_net_step.py                  # tiny, SD-like latents (CPU)
    .venv/bin/python benchmarks/memo_net_step.py --pixel          # + tiny on 3x64x64 (slow on CPU)
    .venv/bin/python benchmarks/memo_net_step.py --threads 1      # intra-op threads on CPU
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from memo_zoo.model.memo_net import MemoNet, build_memo_net
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.components import slot_factories


@dataclass(frozen=True)
class Case:
    name: str
    network: dict
    side: int
    device: str
    autocast: torch.dtype | None
    checkpointing: bool


def timed(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds of ``fn`` after one warm-up call."""
    def once() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


def measure(case: Case, registry, frames: int, motion_frames: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    factories = slot_factories(registry)
    net: MemoNet = build_memo_net(case.network, factories("temporal", {"kind": "linear_memory"}),
                                  factories("audio_fusion", {"kind": "multimodal_attention"})).to(case.device)
    cfg = net.network_config
    if case.checkpointing:
        net.enable_gradient_checkpointing()
    g = torch.Generator(device=case.device).manual_seed(1)
    r = lambda *shape: torch.randn(*shape, generator=g, device=case.device)  # noqa: E731
    c, s = cfg.latent_channels, case.side
    z0, eps = r(1, frames, c, s, s), r(1, frames, c, s, s)
    t = torch.rand(1, generator=g, device=case.device)
    noisy = (1 - t) * z0 + t * eps
    embedding, ref_latents, motion = r(1, cfg.image_embed_dim), r(1, c, s, s), r(1, motion_frames, c, s, s)
    audio = r(1, frames, cfg.audio_tokens, cfg.audio_dim)
    emotion = torch.tensor([4], device=case.device)
    amp = (torch.autocast(case.device, dtype=case.autocast) if case.autocast is not None
           else contextlib.nullcontext())

    def train_step() -> None:
        net.zero_grad(set_to_none=True)
        with amp:
            tokens = net.project_image(embedding)
            reference = net.encode_reference(ref_latents, tokens)
            state = net.motion_state(motion, tokens)
            velocity = net(noisy, t, tokens, audio, emotion, reference, state)
            loss = (velocity.float() - (eps - z0)).square().mean()
        loss.backward()

    results = {"train step": timed(train_step, case.device, repeats)}
    with torch.no_grad(), amp:
        tokens = net.project_image(embedding)

        def per_clip():
            return net.encode_reference(ref_latents, tokens), net.motion_state(motion, tokens)

        reference, state = per_clip()
        results["per clip (ref + memory)"] = timed(per_clip, case.device, repeats)
        results["denoise step"] = timed(lambda: net(noisy, t, tokens, audio, emotion, reference, state),
                                        case.device, repeats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--motion-frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU")
    parser.add_argument("--pixel", action="store_true", help="also tiny on pixel-VAE latents 3x64x64")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cases = [Case("tiny, SD-like latents 4x8x8", {"preset": "tiny"}, 8, "cpu", None, False)]
    if args.pixel:
        cases.append(Case("tiny, pixel latents 3x64x64", {"preset": "tiny", "latent_channels": 3, "sample_size": 64},
                          64, "cpu", None, False))
    if torch.cuda.is_available():
        cases.append(Case("sd15, 512 px latents 4x64x64, bf16", {"preset": "sd15"}, 64, "cuda", torch.bfloat16, True))

    registry = load_registry(disabled=())
    print(f"B=1, F={args.frames}, motion frames={args.motion_frames}, median of {args.repeats}, "
          f"CPU threads={torch.get_num_threads()}, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA: sd15 skipped'}\n")
    print("| case | train step (s) | per clip: ref + memory (s) | denoise step (s) |")
    print("| --- | --- | --- | --- |")
    for case in cases:
        res = measure(case, registry, args.frames, args.motion_frames, args.repeats)
        print(f"| {case.name} | {res['train step']:.3f} | {res['per clip (ref + memory)']:.3f} | "
              f"{res['denoise step']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
