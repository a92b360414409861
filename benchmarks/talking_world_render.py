"""Render speed of the talking_world face renderer (issue 4), single thread.

The synthetic dataset renders thousands of frames per clip set, so the per-frame cost bounds how
fast the embedded default dataset can be generated. For each output size this script renders a
varied stream of states (all emotions, mouth openings, blinks, head poses) over a few identities
and reports the median per-frame time over several repeats (per-identity caches warm, as in a
clip), plus the one-off cost of a new identity's first frame (cache build). Prints a markdown
table.

    python benchmarks/talking_world_render.py
    python benchmarks/talking_world_render.py --frames 1000 --repeats 7 --sizes 64 128
    python benchmarks/talking_world_render.py --photo     # also the real-photo tier
"""

from __future__ import annotations

import os

# Single thread, so the figure is per core (the generator can run one renderer per core).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from memo_zoo.emotion import PAPER_LABELS  # noqa: E402
from memo_zoo_plugins.datasets.talking_world import face as face_mod  # noqa: E402
from memo_zoo_plugins.datasets.talking_world.face import FaceState, render  # noqa: E402
from memo_zoo_plugins.datasets.talking_world.identity import FaceIdentity  # noqa: E402
from memo_zoo_plugins.datasets.talking_world.motion import blink_track, head_pose_track  # noqa: E402


def states(num: int, seed: int = 0) -> list[FaceState]:
    """A clip-like stream: smooth pose, blinks, a speech-like mouth, a few emotions."""
    rng = np.random.default_rng(seed)
    pose = head_pose_track(rng, num, 30.0, 0.3)
    blinks = blink_track(rng, num, 30.0, 20.0)
    t = np.arange(num) / 30.0
    mouth = np.clip(0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t) * np.sin(2 * np.pi * 0.7 * t), 0.0, 1.0)
    return [FaceState(mouth_open=float(mouth[i]), mouth_width=float(0.5 + 0.3 * np.sin(i / 7)),
                      mouth_round=float(0.5 + 0.5 * np.sin(i / 11)), emotion=PAPER_LABELS[(i // 30) % 8],
                      intensity=0.8, blink=float(blinks[i]), yaw=float(pose[i, 0]), pitch=float(pose[i, 1]),
                      roll=float(pose[i, 2]))
            for i in range(num)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--frames", type=int, default=400, help="frames per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--photo", action="store_true", help="also time the real-photo tier (scikit-image)")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    idents = [FaceIdentity.from_seed(s) for s in range(args.identities)]
    stream = states(args.frames)
    per_ident = max(1, args.frames // len(idents))
    print(f"talking_world render, single thread, {args.frames} frames x {args.repeats} repeats, "
          f"{len(idents)} identities, cv2 {cv2.__version__}")
    print()
    print("| size | canvas | ms / frame (median) | min | frames / s | first frame of a new identity (ms) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        # Cold cost: caches emptied, as when the generator meets a new identity.
        face_mod._static.cache_clear()
        face_mod._background.cache_clear()
        t0 = time.perf_counter()
        render(idents[0], stream[0], size)
        cold_ms = (time.perf_counter() - t0) * 1000.0
        for ident in idents:
            render(ident, stream[0], size)
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for i, state in enumerate(stream):
                render(idents[min(i // per_ident, len(idents) - 1)], state, size)
            runs.append((time.perf_counter() - t0) * 1000.0 / len(stream))
        med = statistics.median(runs)
        canvas = size * face_mod._supersample(size)
        print(f"| {size} | {canvas} | {med:.3f} | {min(runs):.3f} | {1000.0 / med:.0f} | {cold_ms:.1f} |")
    if args.photo:
        from memo_zoo_plugins.datasets.talking_world.real_photo import render_photo

        print()
        print("real-photo tier (one portrait, dense remap at the output size)")
        print()
        print("| size | ms / frame (median) | min | frames / s |")
        print("|---:|---:|---:|---:|")
        for size in args.sizes:
            render_photo(stream[0], size)            # loads and downscales the portrait once
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for state in stream:
                    render_photo(state, size)
                runs.append((time.perf_counter() - t0) * 1000.0 / len(stream))
            med = statistics.median(runs)
            print(f"| {size} | {med:.3f} | {min(runs):.3f} | {1000.0 / med:.0f} |")


if __name__ == "__main__":
    main()
