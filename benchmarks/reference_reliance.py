"""How much a trained MEMO network relies on its reference image (spec A2): a diagnostic.

For frames of a dataset's clips it measures the velocity loss (L1) of the trained network on one
target frame at flow times t, with three references: the clip's own first frame, another
clip's first frame, and none (the unconditional branch of spec §10). A network that copies the
portrait has a much lower loss with its own reference than with another person's, most of all at
high t, where the noisy latent says little about the frame. Single frames, no memory, no audio:
the setting of stage 1 (L2).

    .venv/bin/python benchmarks/reference_reliance.py --recipe recipes/experiment_tiny.yaml \
        --checkpoint experiments/experiment-tiny/train-<hash> [--split test] [--clips 6] [key=value ...]

Prints one markdown row per t: mean loss with own / other / no reference over the clips.
"""

from __future__ import annotations

import numpy as np
import torch
from trained_network import load_trained, parser_for


def _image(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def main() -> None:
    from memo_zoo.data.cache import FrameCache
    from memo_zoo.train.loss import noisy_latents, velocity_loss

    parser = parser_for(__doc__)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--frame", type=int, default=60, help="target frame index within each clip")
    args = parser.parse_args()

    registry, recipe, model = load_trained(args)
    net, vae, encoder = model.net, model.vae, model.image_encoder
    dataset = recipe.data.dataset.model_copy(update={"split": args.split})
    samples = recipe.task.train.samples if hasattr(recipe.task, "train") else recipe.task.samples
    cache = FrameCache(fps=samples.fps, size=samples.size)
    clips = [cache.entry(r).frames() for r in registry.build("dataset", dataset).clips()]
    clips = [c for c in clips if len(c) > args.frame][:args.clips]
    if len(clips) < 2:
        raise SystemExit(f"need 2+ clips longer than {args.frame} frames in split {args.split}")
    print("| t | own reference | another person's | no reference |\n|---|---|---|---|")
    with torch.no_grad():
        for t in args.times:
            losses = []
            for i, clip in enumerate(clips):
                target = vae.encode(_image(clip[args.frame:args.frame + 1]))[:, None]
                noise = torch.randn_like(target)
                times = torch.tensor([t])
                z_t = noisy_latents(target, noise, times)
                row = []
                for reference, keep in ((clip[:1], True), (clips[(i + 1) % len(clips)][:1], True), (clip[:1], False)):
                    image = _image(reference)
                    tokens = net.project_image(encoder.encode(image) * float(keep))
                    states = net.encode_reference(vae.encode(image), tokens).hidden_states
                    mask = None if keep else torch.tensor([False])
                    velocity = net(z_t, times, tokens, None, None, states, None, mask)
                    row.append(float(velocity_loss(velocity, target, noise)))
                losses.append(row)
            own, other, none = np.mean(losses, axis=0)
            print(f"| {t:g} | {own:.3f} | {other:.3f} | {none:.3f} |")


if __name__ == "__main__":
    main()
