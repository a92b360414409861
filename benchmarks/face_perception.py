"""Face perception offline (issue 20, item 7): detector speed on real photographs, and what the
``face_crop`` preprocessing stage keeps of talking_world's real-photo tier with the old default
detector (the LBP cascade) and the new one (``best``: dlib's CNN detector).

Part 1, speed: each detector (``memo_zoo.perception.faces.build_detector``) on scikit-image's
astronaut photograph (one face) and matplotlib's Grace Hopper portrait, resized to 256 and 512 px
on the longer side, called directly (no ``detect_size`` shrink). Frames per second are the median
of ``--repeats`` calls after one warm-up; "faces" is how many boxes it returned.

Part 2, landmarks: dlib's 68-point predictor inside dlib_hog boxes, on talking_world's cartoon
faces (``--people`` identities at rest) and on its real-photo tier (6 mouth openings), at 256 px,
against the world's truth: the mean pixel error of five points both name (eye centres, nose tip,
mouth corners), also as a fraction of the inter-ocular distance.

Part 3, the drop report: a talking_world with a photo tier (``--identities`` cartoon people and
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


def landmark_error(people: int) -> None:
    from memo_zoo.perception.faces import DlibHogDetector
    from memo_zoo.perception.landmarks import LandmarkPredictor, five_points
    from memo_zoo_plugins.datasets.talking_world import real_photo
    from memo_zoo_plugins.datasets.talking_world.face import FaceState, face_landmarks, render
    from memo_zoo_plugins.datasets.talking_world.identity import FaceIdentity

    detector, predictor, side = DlibHogDetector(), LandmarkPredictor(68), 256

    def measured(image: np.ndarray) -> np.ndarray | None:
        boxes = detector(image)
        return five_points(predictor(image, boxes[0])) if len(boxes) == 1 else None

    rows = {}
    cartoon, missed = [], 0
    for seed in range(people):
        identity = FaceIdentity.from_seed(seed)
        marks = face_landmarks(identity, FaceState(), side)
        lips = marks["mouth_outer"]
        truth = np.stack([marks["left_eye_centre"], marks["right_eye_centre"], marks["nose_tip"],
                          lips[lips[:, 0].argmin()], lips[lips[:, 0].argmax()]])
        found = measured(render(identity, FaceState(), side))
        if found is None:
            missed += 1
            continue
        cartoon.append((np.linalg.norm(found - truth, axis=1), np.linalg.norm(truth[0] - truth[1])))
    rows[f"cartoon, rest ({len(cartoon)} of {people} people; HOG finds no single face in {missed})"] = cartoon
    photo = []
    for opening in np.linspace(0, 1, 6):
        state = FaceState(mouth_open=float(opening))
        marks = real_photo.photo_landmarks(state, side)
        truth = np.stack([marks["left_eye"], marks["right_eye"], marks["nose_tip"], marks["mouth_left"],
                          marks["mouth_right"]])
        found = measured(real_photo.render_photo(state, side))
        if found is not None:
            photo.append((np.linalg.norm(found - truth, axis=1), np.linalg.norm(truth[0] - truth[1])))
    rows[f"real-photo tier ({len(photo)} of 6 mouth openings)"] = photo
    print(f"\n68-point landmarks at {side} px inside dlib_hog boxes: mean error in px\n")
    print("| faces | left eye | right eye | nose tip | mouth left | mouth right | all | all / inter-ocular |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, found in rows.items():
        errors = np.array([e for e, _ in found])
        ocular = float(np.mean([d for _, d in found]))
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in errors.mean(axis=0))
              + f" | {errors.mean():.2f} | {errors.mean() / ocular:.3f} |")


def photo_world(identities: int, workdir: Path) -> list:
    """The drop report's clips: talking_world with a photo tier. Built before anything else runs in
    this process: the world renders in forked workers, and a fork taken after OpenCV's or dlib's
    thread pools have started can hang on a lock one of their threads held."""
    from memo_zoo_plugins.datasets.talking_world.configs import TalkingWorldConfig
    from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld

    world = TalkingWorld(TalkingWorldConfig(root=str(workdir / "world"), identities=identities, clips_per_identity=1,
                                            seconds=[2.0, 3.0], long_clips=0, test_identities=0, size=128,
                                            photo_fraction=0.5, split="all"), progress=False)
    return list(world.clips())


def drop_report(detectors: list[str], clips: list, identities: int, workdir: Path) -> None:
    from memo_zoo_plugins.preprocess.face_crop import FaceCrop
    from memo_zoo_plugins.preprocess.configs import FaceCropConfig

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
    parser.add_argument("--people", type=int, default=50, help="cartoon identities of the landmark part")
    parser.add_argument("--skip-drops", action="store_true", help="leave out the drop report")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clips = None if args.skip_drops else photo_world(args.identities, Path(folder))
        speed(args.detectors, args.sides, args.repeats)
        landmark_error(args.people)
        if clips is not None:
            drop_report(["lbp", "best"] if args.detectors == parser.get_default("detectors") else args.detectors,
                        clips, args.identities, Path(folder))


if __name__ == "__main__":
    main()
