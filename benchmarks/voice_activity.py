"""Silero voice activity (issue 20): its speed, and its onset / offset errors on espeak speech.

Speed: a talking_world script (``make_script`` + ``synthesize_script``, eSpeak NG offline) is tiled
to ``--seconds`` of 16 kHz audio; each backend's detector (``memo_zoo.perception.voice_activity``)
is warmed up on 5 s (TorchScript profiles its first runs), then timed on the whole track; the best
of ``--repeats`` is reported as seconds of audio per second of wall time.

Accuracy: one sentence per voice, padded with 1.0 s of silence before and 0.7 s after. The true
speech span is the synthesised sentence with espeak's own leading and trailing silence trimmed:
from the first to the last 10 ms frame whose RMS reaches 1% (-40 dB) of the loudest frame's.
The errors are detected minus true, in ms (the detector pads segments by 30 ms).

    python benchmarks/voice_activity.py                  # 60 s, 3 repeats, every voice
    python benchmarks/voice_activity.py --seconds 300 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from memo_zoo.perception.voice_activity import VoiceActivityConfig, VoiceActivityDetector
from memo_zoo_plugins.datasets.talking_world.speech import VOICES, make_script, synthesize, synthesize_script

RATE = 16_000
SENTENCE = "Mary found a blue map by the river this morning."
BEFORE, AFTER = 1.0, 0.7


def energy_bounds(samples: np.ndarray, frame: int = 160, floor: float = 0.01) -> tuple[float, float]:
    """Seconds from the first to the end of the last ``frame``-sample frame whose RMS is at least
    ``floor`` times the loudest frame's."""
    count = len(samples) // frame
    rms = np.sqrt(np.mean(np.square(samples[:count * frame].reshape(count, frame), dtype=np.float64), axis=1))
    loud = np.nonzero(rms >= floor * rms.max())[0]
    return loud[0] * frame / RATE, (loud[-1] + 1) * frame / RATE


def speed(seconds: float, repeats: int) -> None:
    script = synthesize_script(make_script(np.random.default_rng(0), 12), seed=0).samples
    audio = np.tile(script, int(np.ceil(seconds * RATE / len(script))))[:int(seconds * RATE)]
    print(f"| backend | audio | best of {repeats} | seconds of audio per second |\n| --- | --- | --- | --- |")
    for backend in ("onnx", "jit"):
        detector = VoiceActivityDetector(VoiceActivityConfig(backend=backend))
        for _ in range(2):
            detector.detect(audio[:5 * RATE])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            detector.detect(audio)
            times.append(time.perf_counter() - start)
        print(f"| {backend} | {len(audio) / RATE:.0f} s | {min(times):.3f} s | {len(audio) / RATE / min(times):.0f} |")


def accuracy() -> None:
    detector = VoiceActivityDetector()
    print("\n| voice | onset error (ms) | offset error (ms) | segments |\n| --- | --- | --- | --- |")
    for voice in VOICES:
        speech = synthesize(SENTENCE, voice=voice).samples
        start, end = energy_bounds(speech)
        audio = np.concatenate([np.zeros(int(BEFORE * RATE), np.float32), speech,
                                np.zeros(int(AFTER * RATE), np.float32)])
        activity = detector.detect(audio)
        span = activity.span
        print(f"| {voice} | {1000 * (span.start - BEFORE - start):+.0f} | {1000 * (span.end - BEFORE - end):+.0f} | "
              f"{len(activity.segments)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the timed track")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per backend (the best is reported)")
    args = parser.parse_args()
    speed(args.seconds, args.repeats)
    accuracy()


if __name__ == "__main__":
    main()
