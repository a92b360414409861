"""Train the world measurer on the default talking_world and print its held-out check (docs/evaluation.md).

The world (``WorldConfig()``: 12 identities, 2 held out, 4 clips of 4-12 s each + 2 long clips
of 60 s, 64 px, 25 fps) is generated into the cache first if it is not there (about 40 s on 2
cores). Training uses the default ``MeasurerTraining`` options unless overridden; nothing is
cached by this script (``memo_zoo_plugins.datasets.talking_world.measure.store`` does that for the
metrics).

``--metrics`` then runs ``world_lip_sync``, ``world_identity`` and ``world_expression`` with the
trained measurer on the ground-truth videos of the held-out identities (the world's ``test``
split) as if they were generated, each from its own first frame: the figures a perfect generator
would get, the ceiling to read generated videos' figures against.

    .venv/bin/python benchmarks/world_measurer.py
    .venv/bin/python benchmarks/world_measurer.py --epochs 12 --threads 2
    .venv/bin/python benchmarks/world_measurer.py --threads 1 --metrics
"""

from __future__ import annotations

import argparse
import time

import torch

from memo_zoo_plugins.datasets.talking_world.measure.training import MeasurerTraining, train_measurer
from memo_zoo_plugins.datasets.talking_world.world import WorldConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="override MeasurerTraining.epochs")
    parser.add_argument("--frame-stride", type=int, default=None, help="override MeasurerTraining.frame_stride")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics", action="store_true", help="also measure the held-out identities' ground truth")
    args = parser.parse_args()

    world = WorldConfig()
    started = time.perf_counter()
    root = generate(world, progress=False)
    print(f"world {root} ready in {time.perf_counter() - started:.1f} s")
    overrides = {k: v for k, v in {"epochs": args.epochs, "frame_stride": args.frame_stride,
                                   "threads": args.threads, "seed": args.seed}.items() if v is not None}
    options = MeasurerTraining(**overrides)
    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} CPU threads; options: "
          f"{options.model_dump(exclude_defaults=True) or 'defaults'}")
    measurer, report = train_measurer(world, options, progress=False)
    for line in report.lines():
        print(line)
    if args.metrics:
        ground_truth_figures(world, measurer)


def ground_truth_figures(world: WorldConfig, measurer) -> None:
    """The world metrics on the test split's own videos (module docstring)."""
    from memo_zoo.eval.protocol import VideoSample
    from memo_zoo_plugins.datasets.talking_world.measure import metrics as wm
    from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld, TalkingWorldConfig
    from memo_zoo_plugins.datasets.talking_world.truth import FRAME_FIELDS, load_truth

    metrics = [wm.build_lip_sync(wm.WorldLipSyncConfig(world=world), measurer),
               wm.build_identity(wm.WorldIdentityConfig(world=world), measurer),
               wm.build_expression(wm.WorldExpressionConfig(world=world), measurer)]
    fields = world.model_dump(include=set(WorldConfig.model_fields))
    for clip in TalkingWorld(TalkingWorldConfig(**fields, split="test"), progress=False).clips():
        truth = load_truth(clip.truth)
        video = VideoSample.from_file(clip.video)
        video = VideoSample(id=clip.clip_id, frames=video.frames, fps=video.fps, reference_image=video.frames[0],
                            truth={name: getattr(truth, name) for name in FRAME_FIELDS})
        for metric in metrics:
            metric.update(video)
    for metric in metrics:
        result = metric.compute()
        print(f"{metric.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.summary.items()))
        for video_id, figures in result.per_video.items():
            print(f"  {video_id:18s} " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
