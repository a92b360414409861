"""Time to generate the DEFAULT talking_world (issue 4: "well under a minute on 2 cores").

Generates the world of ``WorldConfig()`` (every default, only ``root`` and ``workers`` changed)
from scratch into a temporary folder, once per worker count, and prints a markdown table: clips,
seconds of video, frames, wall time and the realtime factor (seconds of video produced per second
of wall time). The output is identical for every worker count (the generator's determinism), so
only the time differs.

    python benchmarks/talking_world_generate.py                 # workers 2, then 1
    python benchmarks/talking_world_generate.py --workers 2 --keep /tmp/tw_default
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from memo_zoo_plugins.datasets.talking_world.world import WorldConfig, generate, summary


def run(workers: int, root: Path) -> dict:
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    generate(WorldConfig(root=root, workers=workers), progress=False)
    wall = time.perf_counter() - start
    return {"workers": workers, "wall": wall, **summary(root)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 1], help="worker counts to time")
    parser.add_argument("--keep", type=Path, default=None, help="keep the last generated world in this folder")
    args = parser.parse_args()
    print(f"default WorldConfig: {WorldConfig().model_dump(exclude={'root'})}")
    print(f"cores visible: {os.cpu_count()}\n")
    print("| workers | clips | video s | frames | wall s | x realtime |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="tw_bench_") as tmp:
        for workers in args.workers:
            root = args.keep if args.keep is not None else Path(tmp) / "world"
            r = run(workers, root)
            print(f"| {r['workers']} | {r['clips']} | {r['seconds']:.1f} | {r['frames']} | {r['wall']:.1f} | "
                  f"{r['seconds'] / r['wall']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
