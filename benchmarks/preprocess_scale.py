"""Preprocessing throughput, local engine and 1 / N Ray workers (issue 21): clips per second, same output.

A talking_world (default here: 6 identities x 3 clips of 3-5 s, 64 px, 25 fps; generated into
``--root`` once, not timed) goes through scene_split (pieces of at most 1.5 s), the heuristic
quality_filter and a resize to 48 px, the built-in stages that need no downloaded weights. The
local engine runs first; then, for each worker count N, a private local Ray cluster with N CPUs
is started (its start is printed, not counted: a cluster is started once per job) and the whole
pipeline is timed from an empty ``out_dir``. The last column says whether the Ray run gave the
local engine's records and files exactly (report lines as a set, metadata.jsonl, data/video
bytes). Prints a markdown table.

    .venv/bin/python benchmarks/preprocess_scale.py
    .venv/bin/python benchmarks/preprocess_scale.py --workers 1 2 4 --identities 12
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from memo_zoo.data.pipeline import MANIFEST_FILE, REPORT_FILE, VIDEO_DIR, PipelineResult, run_pipeline
from memo_zoo.data.ray_cluster import ray_cluster
from memo_zoo.data.ray_pipeline import RayStage, run_pipeline_on_ray
from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld, TalkingWorldConfig
from memo_zoo_plugins.preprocess import quality, resize, scene_split
from memo_zoo_plugins.preprocess.configs import QualityConfig, ResizeConfig, SceneSplitConfig

STAGES = ((scene_split.build, SceneSplitConfig(max_seconds=1.5, min_seconds=0.5)),
          (quality.build, QualityConfig(threshold=10.0)),
          (resize.build, ResizeConfig(size=48)))


def quiet(*args, **kwargs):
    """No bar: the timings are the table's."""
    return args[0]


def outcome(out: Path) -> tuple[set[str], str, dict[str, bytes]]:
    lines = {line.replace(str(out), "<out>") for line in (out / REPORT_FILE).read_text().splitlines()}
    videos = {p.name: p.read_bytes() for p in sorted((out / VIDEO_DIR).iterdir())}
    return lines, (out / MANIFEST_FILE).read_text(), videos


def row(engine: str, clips: int, seconds: float, result: PipelineResult, base: float, same: str) -> str:
    return (f"| {engine} | {clips} | {len(result.clips)} | {seconds:.1f} | {clips / seconds:.2f} | "
            f"{base / seconds:.2f}x | {same} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "memo_zoo_preprocess_scale")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--identities", type=int, default=6)
    parser.add_argument("--clips-per-identity", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MEMO_ZOO_PROGRESS", "0")

    world = TalkingWorldConfig(root=args.root / "world", identities=args.identities,
                               clips_per_identity=args.clips_per_identity, seconds=(3.0, 5.0), long_clips=0,
                               size=64, test_identities=1, workers=1, split="all")
    dataset = TalkingWorld(world, progress=False)
    start = time.perf_counter()
    clips = len(dataset.clips())
    print(f"talking_world: {clips} clips ({time.perf_counter() - start:.1f} s to generate or find)")

    out = args.root / "local"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    local = run_pipeline(dataset, [build(config) for build, config in STAGES], out, resume=False, progress=quiet)
    base = time.perf_counter() - start
    expected = outcome(out)
    rows = [row("local (1 process)", clips, base, local, base, "(reference)")]

    for workers in args.workers:
        start = time.perf_counter()
        with ray_cluster(None, num_cpus=workers):
            print(f"Ray cluster with {workers} CPU(s) started in {time.perf_counter() - start:.1f} s (not counted)")
            stages = [RayStage(config_kind(config), functools.partial(build, config), config)
                      for build, config in STAGES]
            out = args.root / f"ray{workers}"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            result = run_pipeline_on_ray(dataset, stages, out, resume=False, progress=quiet)
            seconds = time.perf_counter() - start
        same = "yes" if outcome(out) == expected and result.counts == local.counts else "NO"
        rows.append(row(f"ray, {workers} worker{'s' if workers > 1 else ''}", clips, seconds, result, base, same))

    print(f"\n{platform.node()}: {os.cpu_count()} CPU(s); {clips} clips; stages "
          f"{' -> '.join(config_kind(config) for _, config in STAGES)}\n")
    print("| engine | clips | clips out | seconds | clips/s | vs local | same records and files as local |")
    print("|---|---:|---:|---:|---:|---:|:---|")
    print("\n".join(rows))


def config_kind(config) -> str:
    """The stage's name, as the local engine's built stage would give it."""
    return {SceneSplitConfig: "scene_split", QualityConfig: "quality_filter", ResizeConfig: "resize"}[type(config)]


if __name__ == "__main__":
    main()
