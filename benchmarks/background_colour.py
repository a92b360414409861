"""Background colour per generated clip against the portrait's and the training videos' mean.

talking_world draws each person on a flat background whose colour is part of the identity, so the
top corners of a frame show whether the generator copied it from the portrait. Prints, for each
generated video, the mean RGB of the two top corner squares per clip (autoregressive clips of
``--clip-frames``), the same for its portrait, and the mean over the first frames of the world's
training videos (what a generator that ignores the portrait's background would draw), and the
``background`` metric's figures for the video (docs/evaluation.md).

    .venv/bin/python benchmarks/background_colour.py \
        --video experiments/ablate-memory/videos-<hash>/tw_id060_long01.mp4 [--video ...] \
        [--recipe recipes/experiment_tiny.yaml] [--clips 0 1 2 3 10 50 93]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# 10 px of the 64 px frame: above the head in every talking_world pose.
CORNER = 10 / 64


def corner_rgb(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3): mean colour of the top corner squares (the ``background`` metric's)."""
    from memo_zoo_eval.metrics.background import corner_colour

    return corner_colour(frames, ["top_left", "top_right"], CORNER)


def main() -> None:
    from PIL import Image

    from memo_zoo.data.media import read_frames
    from memo_zoo_eval.metrics.background import BackgroundConfig, build
    from memo_zoo.eval.protocol import VideoSample
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo_plugins.datasets.talking_world.world import world_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, action="append", required=True,
                        help="a generated video; its portrait is read from <stem>_portrait.png beside it")
    parser.add_argument("--recipe", type=Path, default=Path("recipes/experiment_tiny.yaml"),
                        help="the recipe whose data.dataset (a talking_world) the generator trained on")
    parser.add_argument("--clip-frames", type=int, default=16, help="frames per generated clip")
    parser.add_argument("--clips", type=int, nargs="+", default=[0, 1, 2, 3, 10, 50, 93], help="clips shown")
    parser.add_argument("--training-videos", type=int, default=30,
                        help="first clips of the first N people averaged (held-out people are numbered last)")
    args = parser.parse_args()

    dataset = load_recipe(args.recipe, load_registry()).recipe.data.dataset
    if dataset is None or dataset.kind != "talking_world":
        raise SystemExit(f"{args.recipe}: data.dataset must be a talking_world")
    videos = sorted((world_root(dataset) / "data" / "video").glob("*_c00.mp4"))[: args.training_videos]
    if not videos:
        raise SystemExit(f"no talking_world videos under {world_root(dataset)}: run the recipe once first")
    training = np.stack([corner_rgb(read_frames(path)[0][:5]).mean(axis=0) for path in videos])
    print(f"training videos ({len(videos)}, first 5 frames): mean RGB {np.round(training.mean(0), 1)}, "
          f"spread between people {np.round(training.std(0), 1)}")
    for path in args.video:
        portrait_path = path.with_name(f"{path.stem}_portrait.png")
        portrait = np.asarray(Image.open(portrait_path).convert("RGB"))[None]
        colours = corner_rgb(read_frames(path)[0])
        print(f"{path}\n  portrait        {np.round(corner_rgb(portrait)[0], 1)}")
        for k in args.clips:
            part = colours[k * args.clip_frames:(k + 1) * args.clip_frames]
            if len(part):
                print(f"  clip {k:3d}        {np.round(part.mean(axis=0), 1)}")
        metric = build(BackgroundConfig(corner=CORNER))
        metric.update(VideoSample.from_file(path, reference_image=portrait[0]))
        figures = metric.compute().per_video[path.stem]
        print("  background metric: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items() if not k.endswith("_window")))


if __name__ == "__main__":
    main()
