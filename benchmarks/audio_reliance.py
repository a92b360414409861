"""How much a trained MEMO network relies on its audio, at the mouth and elsewhere: a diagnostic.

For training-style samples (target clip, motion frames, reference, audio windows) of a dataset
split it measures the velocity loss (L1) of the trained network at flow times t with three
audio inputs: the clip's own, another sample's, and none (zero tokens, the unconditional audio
branch of spec §10). The loss is split into the mouth box (``--mouth``, fractions of the frame)
and the rest of the frame. A network whose mouth follows the audio has a clearly lower mouth
loss with its own audio than with another clip's; elsewhere the audio should not matter.

    .venv/bin/python benchmarks/audio_reliance.py --recipe recipes/experiment_tiny.yaml \
        --checkpoint experiments/experiment-tiny/train-<hash> [--split test] [--samples 16] [key=value ...]

Prints one markdown row per t.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    from memo_zoo.data.samples import TalkingHeadSamples, collate
    from memo_zoo.generate.pipeline import load_generator_model
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo.train.config import ConditionDropoutConfig, TimestepConfig
    from memo_zoo.train.regions import LossRegion, region_weight_map
    from memo_zoo.train.step import TrainModules, prepare_inputs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides, as the checkpoint was trained")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--split", default="test", help="dataset split whose clips are used (test: unseen people)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--mouth", type=float, nargs=4, default=[0.28, 0.5, 0.72, 0.8],
                        help="mouth box x0 y0 x1 y1 in fractions of the frame")
    parser.add_argument("--times", type=float, nargs="+", default=[0.3, 0.6, 0.9])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    registry = load_registry()
    recipe = load_recipe(args.recipe, registry, args.overrides).recipe
    train = recipe.task.train if hasattr(recipe.task, "train") else recipe.task
    model = load_generator_model(args.checkpoint, recipe, registry)
    config = train.samples.model_copy(update={"seed": args.seed})
    records = registry.build("dataset", recipe.data.dataset.model_copy(update={"split": args.split})).clips()
    samples = TalkingHeadSamples(records, config)
    count = min(args.samples, len(samples))
    if count < 2:
        raise SystemExit(f"need 2+ samples in split {args.split}, found {len(samples)}")
    step = max(1, len(samples) // count)
    batch = collate([samples[i * step] for i in range(count)])
    modules = TrainModules(model.net, model.image_encoder, model.audio_encoder, config.fps, config.audio_window).eval()
    no_dropout = ConditionDropoutConfig(emotion=0, reference=0, audio=0, motion=0)
    inputs = prepare_inputs(batch, model.vae, torch.Generator().manual_seed(args.seed), single_frame=False,
                            use_audio=True, timesteps=TimestepConfig(), dropout=no_dropout,
                            motion_padding=train.motion_padding, audio_window=config.audio_window,
                            no_emotion=len(samples.labels), device=torch.device("cpu"))
    height, width = inputs["z0"].shape[-2:]
    inside = region_weight_map([LossRegion(name="mouth", box=tuple(args.mouth), weight=1e6)], height, width)
    # The map is 1 + 1e6 * coverage, normalised: nearly all weight inside; (inside > 1) picks the box's cells.
    mouth = (inside > 1).float() * inside
    mouth = mouth / mouth.mean()
    rest = (inside <= 1).float()
    rest = rest / rest.mean()
    other = torch.roll(inputs["waveform"], 1, dims=0)
    print(f"{count} samples of split {args.split}, mouth box {args.mouth} ({int((inside > 1).sum())} of "
          f"{height * width} latent cells)\n")
    print("| t | mouth: own audio | another clip's | no audio | rest: own audio | another clip's | no audio |")
    print("|---|---|---|---|---|---|---|")
    with torch.no_grad():
        for t in args.times:
            row = {}
            for name, waveform, keep in (("own", inputs["waveform"], True), ("other", other, True),
                                         ("none", inputs["waveform"], False)):
                for region, weights in (("mouth", mouth), ("rest", rest)):
                    x = dict(inputs, t=torch.full_like(inputs["t"], t), waveform=waveform,
                             keep_audio=torch.full_like(inputs["keep_audio"], keep), loss_weights=weights)
                    row[region, name] = float(modules(x).mean())
            print(f"| {t:g} | " + " | ".join(f"{row[r, n]:.4f}" for r in ("mouth", "rest")
                                            for n in ("own", "other", "none")) + " |")


if __name__ == "__main__":
    main()
