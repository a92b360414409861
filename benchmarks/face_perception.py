"""Face perception offline (issue 20, item 7): detector speed on real photographs, and what the
``face_crop`` preprocessing stage keeps of talking_world's real-photo tier with the old default
detector (the LBP cascade) and the new one (``best``: dlib's CNN detector).

Part 1, speed: each detector (``memo_zoo.perception.faces.build_detector``) on scikit-image's
astronaut photograph (one face) and matplotlib's Grace Hopper portrait, resized to 256 and 512 px
on the longer side, called directly (no ``detect_size`` shrink). Frames per second are the median
of ``--repeats`` calls after one warm-up; "faces" is how many boxes it returned.

Part 2, the drop report: a talking_world with a photo tier (``--identities`` cartoon people and
``photo_fraction`` of real-photo clips, 128 px) goes through ``face_crop`` once per detector; each
clip is kept or dropped with the stage's reason. Prints the counts per kind of clip and every
distinct reason.

    .venv/bin/python benchmarks/face_perception.py
    .venv/bin/python benchmarks/face_perception.py --repeats 5 --detectors lbp dlib_hog dlib_cnn best
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from memo_zoo.errors import MemoZooError
from memo_zoo.perception.faces import build_detector


def photographs() -> dict[str, np.ndarray]:
    """Real photographs shipped inside pip packages, as RGB uint8."""
    from matplotlib import cbook
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = cv2.cvtColor(cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR),
                              cv2.COLOR_BGR2RGB)
    return {"astronaut": data.astronaut(), "grace_hopper": hopper}


def resized(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    factor = side / max(height, width)
    return cv2.resize(image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)


def speed(detectors: list[str], sides: list[int], repeats: int) -> None:
    images = photographs()
    print("| detector | " + " | ".join(f"{name} {side} px: frames/s (faces)" for side in sides for name in images)
          + " |")
    print("|---|" + "---:|" * (len(sides) * len(images)))
    for kind in detectors:
        try:
            detector = build_detector(kind, max_side=max(sides))
        except MemoZooError as error:
            print(f"| {kind} | not available here: {error} |")
            continue
        cells = []
        for side in sides:
            for image in images.values():
                frame = resized(image, side)
                found = detector(frame)  # warm-up
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    detector(frame)
                    times.append(time.perf_counter() - started)
                cells.append(f"{1 / statistics.median(times):.1f} ({len(found)})")
        label = kind if kind != "best" else f"best = {detector.kind}"
        print(f"| {label} | " + " | ".join(cells) + " |")


def drop_report(detectors: list[str], identities: int, workdir: Path) -> None:
    from memo_zoo_plugins.datasets.talking_world.configs import TalkingWorldConfig
    from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld
    from memo_zoo_plugins.preprocess.face_crop import FaceCrop
    from memo_zoo_plugins.preprocess.configs import FaceCropConfig

    world = TalkingWorld(TalkingWorldConfig(root=str(workdir / "world"), identities=identities, clips_per_identity=1,
                                            seconds=[2.0, 3.0], long_clips=0, test_identities=0, size=128,
                                            photo_fraction=0.5, split="all"), progress=False)
    clips = world.clips()
    kinds = Counter("photo" if c.speaker == "tw_photo" else "cartoon" for c in clips)
    print(f"\ntalking_world at 128 px: {kinds['cartoon']} cartoon clips ({identities} people), "
          f"{kinds['photo']} real-photo clips; face_crop with its defaults but the detector\n")
    print("| detector | cartoon kept | photo kept | s per clip | drop reasons |")
    print("|---|---:|---:|---:|---|")
    for kind in detectors:
        try:
            stage = FaceCrop(FaceCropConfig(detector=kind, size=None))
        except MemoZooError as error:
            print(f"| {kind} | not available here: {error} |")
            continue
        kept, reasons = Counter(), Counter()
        started = time.perf_counter()
        for clip in clips:
            result = stage.process(clip, workdir / kind)
            group = "photo" if clip.speaker == "tw_photo" else "cartoon"
            if result.kept:
                kept[group] += 1
            else:
                # the counts in a reason differ per clip: group by its words
                reasons[f"{group}: " + " ".join(w for w in result.reason.split() if not any(ch.isdigit() for ch in w))] += 1
        per_clip = (time.perf_counter() - started) / len(clips)
        label = kind if kind != "best" else f"best = {stage.detector.kind}"
        listed = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common()) or "-"
        print(f"| {label} | {kept['cartoon']}/{kinds['cartoon']} | {kept['photo']}/{kinds['photo']} | "
              f"{per_clip:.2f} | {listed} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=["lbp", "dlib_hog", "dlib_cnn", "best"])
    parser.add_argument("--sides", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--identities", type=int, default=12, help="cartoon people of the drop-report world")
    parser.add_argument("--skip-drops", action="store_true", help="only the speed table")
    args = parser.parse_args()
    speed(args.detectors, args.sides, args.repeats)
    if not args.skip_drops:
        with tempfile.TemporaryDirectory() as folder:
            drop_report(["lbp", "best"] if args.detectors == parser.get_default("detectors") else args.detectors,
                        args.identities, Path(folder))


if __name__ == "__main__":
    main()
