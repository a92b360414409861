"""How often each face detector finds the face in talking_world's portraits, and never in noise.

Generation warns "no face found in the portrait" when its detector finds nothing; on the
embedded default's own portraits that warning must not fire, or it tells the user nothing
(issue 16). For ``--people`` identities (seeds 0..N-1) it renders the neutral rest-pose portrait
and, with ``--states``, the expression / pose states of the contact sheet, at ``--size`` px, then
counts the frames in which each detector (``memo_zoo.perception.faces``) finds at least one face;
``--noise`` random-noise and flat-colour images count false faces. Prints a markdown table.

    .venv/bin/python benchmarks/face_detectors.py
    .venv/bin/python benchmarks/face_detectors.py --people 50 --size 64 --states
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from memo_zoo.errors import MemoZooError
from memo_zoo.perception.faces import build_detector, find_faces, portrait_detector
from memo_zoo_plugins.datasets.talking_world.face import FaceState, render
from memo_zoo_plugins.datasets.talking_world.identity import FaceIdentity

STATES = {"rest": FaceState(), "happy": FaceState(emotion="happy"), "surprised": FaceState(emotion="surprised"),
          "mouth open": FaceState(mouth_open=0.85), "blink": FaceState(blink=1.0),
          "head turn": FaceState(yaw=0.45, pitch=0.1, roll=0.08)}


def non_faces(count: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    images = [(rng.random((size, size, 3)) * 255).astype(np.uint8) for _ in range(count)]
    images += [np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8) for _ in range(count)]
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--states", action="store_true", help="also the expression and pose states")
    parser.add_argument("--noise", type=int, default=10, help="noise and flat-colour images each")
    parser.add_argument("--detectors", nargs="+", default=["lbp", "dlib_hog", "portrait"],
                        help="kinds of build_detector, or 'portrait': generation's portrait check")
    args = parser.parse_args()
    states = STATES if args.states else {"rest": STATES["rest"]}
    frames = {name: [render(FaceIdentity.from_seed(seed), state, args.size) for seed in range(args.people)]
              for name, state in states.items()}
    negatives = non_faces(args.noise, args.size)
    print(f"talking_world portraits at {args.size} px, {args.people} people (seeds 0-{args.people - 1})\n")
    print("| detector | " + " | ".join(f"found: {name}" for name in states) + " | false faces | ms per image |")
    print("|---|" + "---:|" * (len(states) + 2))
    for kind in args.detectors:
        try:
            detector = portrait_detector() if kind == "portrait" else build_detector(kind)
        except MemoZooError as error:
            print(f"| {kind} | not available here: {error} |")
            continue
        started, count = time.perf_counter(), 0
        found = []
        for name in states:
            hits = sum(len(find_faces(detector, frame)) > 0 for frame in frames[name])
            count += len(frames[name])
            found.append(f"{hits}/{len(frames[name])}")
        false = sum(len(find_faces(detector, image)) > 0 for image in negatives)
        count += len(negatives)
        ms = 1000 * (time.perf_counter() - started) / count
        print(f"| {kind} | " + " | ".join(found) + f" | {false}/{len(negatives)} | {ms:.1f} |")


if __name__ == "__main__":
    main()
