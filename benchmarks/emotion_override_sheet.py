"""Contact sheet of the manual-override study (issue 23 item 5): one held-out portrait generated
under each of the 8 emotion labels, next to the world's truth render of that label.

Reads the folder ``memo-zoo run recipes/emotion_override.yaml`` wrote (``experiments/
emotion-override/override-<key>/``: ``<clip>__<label>.mp4`` per label). Rows, per clip:

- truth: the world's renderer drawing the clip's person with the label (intensity 0.9) and
  everything else (mouth, pose, blink, gaze) as in the driving clip's truth at that frame;
- generated: the frame of the video generated with that label at the same time, with the share
  of the video's frames the world measurer reads as the label (the study's per-video figure).

    .venv/bin/python benchmarks/emotion_override_sheet.py --recipe recipes/emotion_override.yaml \\
        --override-dir experiments/emotion-override/override-<key> --out docs/images/emotion_override_sheet.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from memo_zoo.data.media import read_frames
from memo_zoo.emotion import PAPER_LABELS

TRUTH_FIELDS = ("mouth_open", "mouth_width", "mouth_round", "blink", "yaw", "pitch", "roll", "gaze_x", "gaze_y")


def truth_row(recipe, record, frame: int, size: int) -> list[np.ndarray]:
    """The world's render of the clip's person at ``frame`` with each label."""
    from memo_zoo_plugins.datasets.talking_world.api import ClipRenderer, FaceState, load_truth, plan_clips

    plan = next(p for p in plan_clips(recipe.data.dataset) if p.clip_id == record.clip_id)
    render, truth = ClipRenderer(plan, size), load_truth(record.truth)
    state = {name: float(getattr(truth, name)[frame]) for name in TRUTH_FIELDS}
    return [render(FaceState(emotion=label, intensity=0.9, **state))[0] for label in PAPER_LABELS]


def generated_row(folder: Path, clip_id: str, frame: int) -> tuple[list[np.ndarray], list[float]]:
    """The generated frame per label and the share of that video read as the label."""
    shares = {}
    table = folder / "per_video.json"
    if table.is_file():
        rows = json.loads(table.read_text())
        shares = dict(zip(rows["video"], rows["read_as_requested"]))
    images, read = [], []
    for label in PAPER_LABELS:
        name = f"{clip_id.replace('/', '__')}__{label}"
        path = folder / f"{name}.mp4"
        if not path.is_file():
            sys.exit(f"{path}: missing; run memo-zoo run recipes/emotion_override.yaml first")
        frames, _ = read_frames(path)
        images.append(frames[min(frame, len(frames) - 1)])
        read.append(float(shares.get(name, float("nan"))))
    return images, read


def tile(image: np.ndarray, side: int, caption: str) -> np.ndarray:
    out = cv2.resize(image, (side, side), interpolation=cv2.INTER_NEAREST)
    strip = np.full((18, side, 3), 255, np.uint8)
    cv2.putText(strip, caption, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, out])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="recipe overrides, as memo-zoo run takes them")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--override-dir", type=Path, required=True)
    parser.add_argument("--clips", nargs="*", default=None, help="clip ids (default: every clip in the folder)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time of the frame shown")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.loader import load_recipe

    registry = load_registry()
    recipe = load_recipe(args.recipe, registry, args.overrides).recipe
    records = {r.clip_id: r for r in registry.build("dataset", recipe.data.dataset.model_copy(
        update={"split": "all"})).clips()}
    found = sorted({p.name.split("__")[0] for p in args.override_dir.glob("*__neutral.mp4")})
    clips = args.clips or found
    if not clips:
        sys.exit(f"{args.override_dir}: no <clip>__<label>.mp4 videos")
    size = int(recipe.task.train.samples.size)
    fps = float(recipe.task.train.samples.fps)
    frame = int(round(args.seconds * fps))
    rows = []
    for clip_id in clips:
        record = records[clip_id]
        truth = truth_row(recipe, record, frame, size)
        generated, read = generated_row(args.override_dir, clip_id, frame)
        rows.append(np.concatenate([tile(t, args.tile, f"truth: {label}") for t, label in zip(truth, PAPER_LABELS)], 1))
        rows.append(np.concatenate([tile(g, args.tile, f"gen: {100 * r:.0f} % read" if r == r else "gen")
                                    for g, r in zip(generated, read)], 1))
    sheet = np.concatenate(rows, 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}: {len(clips)} clips x {len(PAPER_LABELS)} labels at {args.seconds} s")


if __name__ == "__main__":
    main()
