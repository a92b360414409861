"""Where the time of one CPU training step goes, and how close it runs to this machine's matmul rate.

Builds the parts of ``recipes/experiment_tiny.yaml`` (the tiny MEMO network, linear memory,
multimodal attention, log-mel audio encoder, conv image encoder, and an AutoencoderKL of the
recipe's ``train_vae`` geometry with random weights: the cost does not depend on the weights) and
feeds it synthetic batches laid out as ``memo_zoo.data.samples.collate`` lays them out, at the
recipe's sizes: 4 samples of 8 target frames at 64 px, 16 motion slots of which each sample uses
8 or 16 (T5's dynamic counts), 5 audio windows per frame. No world, no MLflow.

With ``--baseline`` the step is the one before issue 19 (every frame encoded, for-loop AdamW, a
forward per motion-count group); by default it is the trainer's (latent cache, warm as in a long
run where frames come back; fused AdamW; one forward over merged memories).

For each phase (``stage1``: single frames, spatial layers; ``joint``: everything) it prints the
median wall time of each part of a step (``prepare_inputs``: frozen VAE encode and draws;
forward; backward; AdamW step), the FLOPs of each part (``torch.utils.flop_counter``), the
achieved GFLOP/s, this machine's measured float32 matmul rate, samples/s, and with ``--profile``
the top operators by self CPU time (``torch.profiler``).

    .venv/bin/python benchmarks/train_profile.py                 # both phases, torch's default threads
    .venv/bin/python benchmarks/train_profile.py --baseline      # the step before issue 19
    .venv/bin/python benchmarks/train_profile.py --threads 1     # one intra-op thread
    .venv/bin/python benchmarks/train_profile.py --profile --phase joint
    .venv/bin/python benchmarks/train_profile.py model.temporal.kind=self_attention model.temporal.motion_frames=16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from memo_zoo.emotion import LABEL_SETS
from memo_zoo.model.memo_net import build_network
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.components import component_config, slot_factories
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.train.latent_cache import LatentCache
from memo_zoo.train.step import TrainModules, apply_phase, prepare_inputs, robust_objective
from memo_zoo_plugins.vae.autoencoder_training import build_autoencoder

ROOT = Path(__file__).resolve().parent.parent


def matmul_rate(size: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of a float32 (size x size) @ (size x size) matmul, median of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times) / 1e9


def synthetic_batch(generator: torch.Generator, batch: int, frames: int, motion: int, size: int, window: int,
                    samples_per_frame: int, counts: list[int], labels: int, clip: int = 0) -> dict[str, Any]:
    """A batch as ``collate`` lays it out; sample i uses the newest ``counts[i]`` motion slots. Its
    frames are keyed as frames of clip ``clip + i`` (each image its own frame index)."""
    r = lambda *shape: torch.rand(*shape, generator=generator) * 2 - 1  # noqa: E731
    mask = torch.stack([torch.arange(motion) >= motion - c for c in counts])

    def keys(first: int, n: int) -> torch.Tensor:
        return torch.stack([torch.stack([torch.full((n,), clip + i), torch.arange(first, first + n)], dim=1)
                            for i in range(batch)])

    return {"reference": r(batch, 3, size, size), "target": r(batch, frames, 3, size, size),
            "motion": r(batch, motion, 3, size, size), "motion_mask": mask,
            "audio": 0.3 * r(batch, frames, 2 * window + 1, samples_per_frame),
            "emotion": torch.randint(0, labels, (batch,), generator=generator),
            "reference_key": keys(0, 1)[:, 0], "motion_keys": keys(1, motion), "target_keys": keys(1 + motion, frames)}


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(overrides: list[str]) -> tuple[Any, TrainModules, Any]:
    registry = load_registry()
    recipe = load_recipe(ROOT / "recipes" / "experiment_tiny.yaml", registry, overrides).recipe
    net = build_network(recipe.model, slot_factories(registry))
    image = registry.build("image_encoder", recipe.model.image_encoder)
    audio = registry.build("audio_encoder", recipe.model.audio_encoder)
    train = recipe.task.train
    samples = train.samples
    modules = TrainModules(net, image, audio, samples.fps, samples.audio_window, train.loss_target)
    folder = Path(tempfile.mkdtemp(prefix="train-profile-vae-"))
    build_autoencoder(recipe.task.train_vae, samples.size).save_pretrained(folder)
    vae = registry.build("vae", component_config(registry, "vae", {"kind": "sd_vae", "weights": str(folder)}))
    return recipe, modules, vae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides (experiment_tiny.yaml)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per phase (median)")
    parser.add_argument("--phase", choices=("stage1", "joint", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="print the top operators (torch.profiler)")
    parser.add_argument("--baseline", action="store_true",
                        help="the step as it was before issue 19: no latent cache, for-loop AdamW, one forward "
                             "per motion-count group (default: the trainer's defaults, the cache warm as in a "
                             "long run: every frame comes back)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe, modules, vae = build(args.overrides)
    train = recipe.task.train
    samples = train.samples
    labels = len(LABEL_SETS[samples.label_set])
    optimizer = torch.optim.AdamW([p for p in modules.parameters() if p.requires_grad], lr=train.lr,
                                  fused=None if args.baseline else True)
    modules.merge_groups = not args.baseline
    cache = None if args.baseline else LatentCache(train.latent_cache_mb * 2**20)
    allowed = [p for p in modules.parameters()]
    rate = matmul_rate()
    print(f"threads {torch.get_num_threads()}; float32 matmul 1024^3: {rate:.1f} GFLOP/s; "
          f"{'baseline' if args.baseline else 'latent cache, fused AdamW, merged groups'}\n")
    phases = [("stage1", "spatial"), ("joint", "all")]
    if args.phase != "both":
        phases = [p for p in phases if p[0] == args.phase]
    rows = []
    for name, trainable in phases:
        apply_phase(modules, trainable, allowed)
        single = trainable == "spatial"
        g = torch.Generator().manual_seed(0)
        motion = max(samples.motion_frames)
        batches = [synthetic_batch(g, train.batch_size, samples.clip_frames, motion, samples.size,
                                   samples.audio_window, round(16000 / samples.fps),
                                   [samples.motion_frames[(i + k) % len(samples.motion_frames)]
                                    for i in range(train.batch_size)], labels, clip=k * train.batch_size)
                   for k in range(2)]
        state = {"k": 0}

        def prepare() -> dict[str, Any]:
            batch = batches[state["k"] % len(batches)]
            state["k"] += 1
            return prepare_inputs(batch, vae, torch.Generator().manual_seed(state["k"]), single_frame=single,
                                  use_audio=not single, timesteps=train.timesteps, dropout=train.condition_dropout,
                                  motion_padding=train.motion_padding, audio_window=samples.audio_window,
                                  no_emotion=labels, device=torch.device("cpu"), vae_batch=train.vae_batch,
                                  loss_regions=train.loss_regions, latent_cache=cache)

        def forward(inputs: dict[str, Any]) -> torch.Tensor:
            return robust_objective(modules(inputs), None)[0]

        def whole() -> None:
            objective = forward(prepare())
            objective.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        for _ in range(2):
            whole()
        inputs = prepare()
        with FlopCounterMode(display=False) as counter:
            prepare()
        prep_flops = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            objective = forward(inputs)
        fwd_flops = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            objective.backward()
        bwd_flops = counter.get_total_flops()
        optimizer.zero_grad(set_to_none=True)
        t_prep = median_time(prepare, args.steps)
        t_fwd = median_time(lambda: forward(inputs), args.steps)
        outs: list[torch.Tensor] = []

        def backward() -> None:
            outs.pop().backward()
            optimizer.zero_grad(set_to_none=True)

        t_bwd = []
        for _ in range(args.steps):
            outs.append(forward(inputs))
            t_bwd.append(median_time(backward, 1))
        t_bwd_med = statistics.median(t_bwd)
        objective = forward(inputs)
        objective.backward()
        t_opt = median_time(optimizer.step, args.steps)
        optimizer.zero_grad(set_to_none=True)
        t_step = median_time(whole, args.steps)
        for part, seconds, flops in (("prepare_inputs (VAE encode, draws)", t_prep, prep_flops),
                                     ("forward", t_fwd, fwd_flops), ("backward", t_bwd_med, bwd_flops),
                                     ("AdamW step", t_opt, 0)):
            rows.append((name, part, seconds, flops))
        rows.append((name, "whole step", t_step, prep_flops + fwd_flops + bwd_flops))
        print(f"{name}: {train.batch_size / t_step:.2f} samples/s")
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    whole()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    print("\n| phase | part | median s | GFLOP | GFLOP/s | of matmul rate |\n|---|---|---|---|---|---|")
    for name, part, seconds, flops in rows:
        gflops = flops / 1e9
        achieved = gflops / seconds if seconds else 0.0
        print(f"| {name} | {part} | {seconds:.4f} | {gflops:.2f} | {achieved:.1f} | "
              f"{100 * achieved / rate:.0f}% |")


if __name__ == "__main__":
    main()
