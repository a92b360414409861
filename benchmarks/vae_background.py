"""Can the autoencoder draw an unseen person's background? Corner colour after a VAE round trip.

A generator working in the autoencoder's latent space can draw no colour the autoencoder cannot
decode. talking_world draws each person on a flat background, so the top corners of a clip's first
frame show it. For the people the autoencoder trained on (split ``train``) and for held-out ones
(split ``test``), this encodes and decodes each clip's first frame with the recipe's ``model.vae``
and prints the RGB distance of the corner colour (the ``background`` metric's corners) before and
after, and the PSNR of the whole frame.

    .venv/bin/python benchmarks/vae_background.py --recipe recipes/experiment_tiny.yaml \
        [model.vae.weights=checkpoints/other-vae] [--train-clips 30]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch


def round_trip(vae, frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 through encode + decode, back to uint8."""
    with torch.no_grad():
        images = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        decoded = vae.decode(vae.encode(images))
    return decoded.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()


def main() -> None:
    from memo_zoo.data.cache import FrameCache
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo_eval.metrics.background import BackgroundConfig, corner_colour

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides (key=value)")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--train-clips", type=int, default=30, help="training clips measured (first frames)")
    args = parser.parse_args()

    registry = load_registry()
    recipe = load_recipe(args.recipe, registry, args.overrides).recipe
    vae = registry.build("vae", recipe.model.vae)
    samples = recipe.task.train.samples
    cache = FrameCache(fps=samples.fps, size=samples.size)
    corners = BackgroundConfig()
    print(f"autoencoder: {recipe.model.vae.weights}")
    print("| split | clip | corner RGB | after the round trip | distance | frame PSNR (dB) |\n|---|---|---|---|---|---|")
    for split, limit in (("train", args.train_clips), ("test", None)):
        records = registry.build("dataset", recipe.data.dataset.model_copy(update={"split": split})).clips()
        firsts = {}
        for record in records:
            person = record.clip_id.rsplit("_", 1)[0]
            firsts.setdefault(person, record)  # one clip per person: backgrounds are per person
        chosen = list(firsts.values())[:limit]
        frames = np.stack([cache.entry(r).frames()[0] for r in chosen])
        rebuilt = round_trip(vae, frames)
        before = corner_colour(frames, corners.corners, corners.corner)
        after = corner_colour(rebuilt, corners.corners, corners.corner)
        distance = np.linalg.norm(before - after, axis=1)
        mse = ((frames.astype(np.float64) - rebuilt) ** 2).reshape(len(frames), -1).mean(axis=1)
        psnr = 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12))
        if split == "test":
            for r, b, a, d, p in zip(chosen, before, after, distance, psnr):
                print(f"| test | {r.clip_id} | {np.round(b).astype(int)} | {np.round(a).astype(int)} | {d:.1f} | "
                      f"{p:.1f} |")
        print(f"| {split} | mean of {len(chosen)} people | | | **{distance.mean():.1f}** | "
              f"{psnr.mean() if math.isfinite(psnr.mean()) else float('inf'):.1f} |")


if __name__ == "__main__":
    main()
