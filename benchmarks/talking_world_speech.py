"""Throughput of talking_world's speech side (issue 4): seconds of audio per second of wall time.

For each target length, draws a script of generated sentences with changing emotions
(``make_script``), synthesises it with eSpeak NG (``synthesize_script``: one fresh espeak instance
per sentence, resampling to 16 kHz, phoneme/word bookkeeping), then derives the per-frame mouth
and energy tracks at 30 fps (spec §0). Reports the median of ``--repeats`` runs as a markdown
table; "x realtime" is seconds of audio produced per second of wall time (single thread: espeak
is serialised under one lock anyway).

    python benchmarks/talking_world_speech.py                      # 10 s, 60 s, 300 s of speech
    python benchmarks/talking_world_speech.py --seconds 30 600 --voice male_uk
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from memo_zoo_plugins.datasets.talking_world.speech import VOICES, make_script, synthesize_script
from memo_zoo_plugins.datasets.talking_world.visemes import energy_track, mouth_track

FPS = 30
SECONDS_PER_LINE = 3.0  # rough mean over emotions; the table reports the real audio length


def run_once(seconds: float, voice: str, seed: int) -> tuple[float, float, float, int]:
    lines = make_script(np.random.default_rng(seed), max(1, round(seconds / SECONDS_PER_LINE)))
    t0 = time.perf_counter()
    utt = synthesize_script(lines, voice=voice, pause=0.3, seed=seed)
    t1 = time.perf_counter()
    frames = int(np.ceil(utt.duration * FPS))
    mouth_track(utt.phonemes, FPS, frames)
    energy_track(utt.samples, utt.sample_rate, FPS, frames)
    t2 = time.perf_counter()
    return utt.duration, t1 - t0, t2 - t1, len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0, 300.0])
    parser.add_argument("--voice", default="female_us", choices=sorted(VOICES))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    run_once(2.0, args.voice, seed=0)  # warm-up: copies the library, fills the page cache
    print(f"voice {args.voice}, {FPS} fps tracks, median of {args.repeats} runs\n")
    print("| target s | audio s | sentences | synth s | tracks s | x realtime (synth) "
          "| x realtime (all) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for seconds in args.seconds:
        runs = [run_once(seconds, args.voice, seed=r + 1) for r in range(args.repeats)]
        audio = statistics.median(r[0] for r in runs)
        synth = statistics.median(r[1] for r in runs)
        tracks = statistics.median(r[2] for r in runs)
        print(f"| {seconds:.0f} | {audio:.1f} | {runs[0][3]} | {synth:.3f} | {tracks:.3f} "
              f"| {audio / synth:.0f} | {audio / (synth + tracks):.0f} |")


if __name__ == "__main__":
    main()
