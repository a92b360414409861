"""Does the autoencoder keep the mouth? Lip sync of held-out clips before and after a VAE round trip.

Encodes and decodes every frame of a split's clips with the recipe's ``model.vae`` and measures
the world lip sync (the world measurer's mouth opening against the truth's ``mouth_open``, lag 0,
docs/evaluation.md) on the real frames and on their reconstructions. If the reconstructions lose
the correlation, no generator working in that latent space can show lip sync.

    .venv/bin/python benchmarks/vae_lip_sync.py --recipe recipes/experiment_tiny.yaml [--split test] [--clips 4]

Prints one markdown row per clip.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from memo_zoo.data.cache import FrameCache
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo_plugins.datasets.talking_world.measure.metrics import lip_sync_figures
    from memo_zoo_plugins.datasets.talking_world.measure.store import MeasurerSource, load_or_train_measurer
    from memo_zoo_plugins.datasets.talking_world.truth import load_truth

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides (key=value)")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()

    registry = load_registry()
    recipe = load_recipe(args.recipe, registry, args.overrides).recipe
    vae = registry.build("vae", recipe.model.vae)
    measurer, _ = load_or_train_measurer(MeasurerSource())
    samples = recipe.task.train.samples if hasattr(recipe.task, "train") else recipe.task.samples
    cache = FrameCache(fps=samples.fps, size=samples.size)
    records = registry.build("dataset", recipe.data.dataset.model_copy(update={"split": args.split})).clips()
    print("| clip | frames | lip sync r, real frames | after the VAE round trip |\n|---|---|---|---|")
    for record in records[:args.clips]:
        frames = cache.entry(record).frames()
        truth = load_truth(record.truth).mouth_open
        with torch.no_grad():
            images = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            decoded = torch.cat([vae.decode(vae.encode(images[i:i + 64])) for i in range(0, len(images), 64)])
        rebuilt = decoded.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
        real = lip_sync_figures(measurer.measure(frames).mouth_open, truth, 0)["lip_sync_r"]
        round_trip = lip_sync_figures(measurer.measure(rebuilt).mouth_open, truth, 0)["lip_sync_r"]
        print(f"| {record.clip_id} | {len(frames)} | {real:.3f} | {round_trip:.3f} |")


if __name__ == "__main__":
    main()
