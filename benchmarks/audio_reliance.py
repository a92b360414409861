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

import torch
from trained_network import load_trained, parser_for


def main() -> None:
    from memo_zoo.data.samples import TalkingHeadSamples, collate
    from memo_zoo.train.config import ConditionDropoutConfig, TimestepConfig
    from memo_zoo.model.latent_boxes import box_coverage
    from memo_zoo.train.step import TrainModules, prepare_inputs

    parser = parser_for(__doc__)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--mouth", type=float, nargs=4, default=[0.28, 0.5, 0.72, 0.8],
                        help="mouth box x0 y0 x1 y1 in fractions of the frame")
    args = parser.parse_args()

    registry, recipe, model = load_trained(args)
    train = recipe.task.train if hasattr(recipe.task, "train") else recipe.task
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
    # The mouth's loss weights each cell by its share of the box (a cell half in it counts half);
    # the rest is the cells wholly outside the box.
    coverage = box_coverage(tuple(args.mouth), height, width).float()
    outside = (coverage == 0).float()
    mouth, rest = coverage / coverage.mean(), outside / outside.mean()
    other = torch.roll(inputs["waveform"], 1, dims=0)
    print(f"{count} samples of split {args.split}, mouth box {args.mouth} ({int((coverage > 0).sum())} of "
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
