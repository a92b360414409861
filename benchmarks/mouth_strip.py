"""A figure of the mouth over time: real frames above generated ones, with the audio's truth.

For a talking_world held-out clip and one or more videos generated from its first frame and audio,
draws the lower half of the face (where talking_world's mouths are) for consecutive frames, the
real video on top and each generated video below it, then the truth's speech-driven mouth opening
(``mouth_open``) over the same frames. A mouth that follows the audio opens and closes with the
curve.

    .venv/bin/python benchmarks/mouth_strip.py --clip tw_id060_long01 --start 140 --frames 24 \
        --video "600 joint steps=experiments/experiment-tiny/videos-<hash>/tw_id060_long01.mp4" \
        --out docs/images/experiment_tiny_mouth_strip.png [--recipe recipes/experiment_tiny.yaml] [--every 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memo_zoo.data.media import read_frames
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo_plugins.datasets.talking_world.truth import load_truth
    from memo_zoo_plugins.datasets.talking_world.world import world_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", required=True, help="talking_world clip id (its video and truth are read)")
    parser.add_argument("--video", action="append", required=True, help="LABEL=PATH of a generated video (repeat)")
    parser.add_argument("--recipe", type=Path, default=Path("recipes/experiment_tiny.yaml"),
                        help="the recipe whose data.dataset (a talking_world) holds the clip")
    parser.add_argument("--start", type=int, default=0, help="first frame")
    parser.add_argument("--frames", type=int, default=24, help="frames shown")
    parser.add_argument("--every", type=int, default=1, help="show every N-th frame")
    parser.add_argument("--box", type=float, nargs=4, default=[0.2, 0.45, 0.8, 0.9],
                        help="crop x0 y0 x1 y1 in fractions of the frame")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    dataset = load_recipe(args.recipe, load_registry()).recipe.data.dataset
    if dataset is None or dataset.kind != "talking_world":
        raise SystemExit(f"{args.recipe}: data.dataset must be a talking_world (its truth drives the figure)")
    root = world_root(dataset)
    truth = load_truth(root / "data" / "truth" / f"{args.clip}.npz")
    rows = [("real", read_frames(root / "data" / "video" / f"{args.clip}.mp4")[0])]
    for item in args.video:
        label, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--video needs LABEL=PATH, got {item!r}")
        rows.append((label, read_frames(Path(path))[0]))
    index = np.arange(args.start, args.start + args.frames, args.every)
    short = min(len(frames) for _, frames in rows)
    if index[-1] >= min(short, truth.frames):
        raise SystemExit(f"frames {args.start}..{index[-1]} run past the shortest video ({short} frames)")
    size = rows[0][1].shape[1]
    x0, y0, x1, y1 = (int(round(v * size)) for v in args.box)

    fig = plt.figure(figsize=(0.62 * len(index) + 1.2, 0.75 * len(rows) + 1.6), dpi=130)
    grid = fig.add_gridspec(len(rows) + 1, len(index), height_ratios=[1] * len(rows) + [1.3], hspace=0.08, wspace=0.04)
    for r, (label, frames) in enumerate(rows):
        for c, i in enumerate(index):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(frames[i, y0:y1, x0:x1], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    curve = fig.add_subplot(grid[len(rows), :])
    span = np.arange(args.start, index[-1] + 1)
    curve.plot(span, truth.mouth_open[span], color="0.3", label="truth mouth_open (from the speech)")
    curve.scatter(index, truth.mouth_open[index], color="tab:red", s=10, zorder=3)
    curve.set_xlim(index[0] - 0.5, index[-1] + 0.5)
    curve.set_xlabel(f"frame of {args.clip} (25 fps)", fontsize=8)
    curve.legend(fontsize=7, loc="upper right")
    curve.tick_params(labelsize=7)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
