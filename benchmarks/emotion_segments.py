"""Time to label every video frame of a 10-minute audio with an emotion detector (spec E5, issue 6).

The audio is talking_world speech (eSpeak, ``speech.py``): a few minutes of varied sentences and
emotions, tiled to the requested length and written to a WAV file. Timed, for ``prosody_mlp``:

- ``frame_labels`` on the decoded audio at 25 fps, stride 1 (every frame's own 3 s window) and
  stride 5;
- ``label_audio_file``: a cold call (decode the WAV + label + write the cache entry) and a warm one
  (cache hit).

Labels do not depend on the head's weights for timing purposes, so without ``--checkpoint`` a
randomly initialised head is saved to a temporary checkpoint. ``--emotion2vec DIR`` also times
``emotion2vec_mlp`` with a real funasr model folder (random head) on the first ``--e2v-seconds``
of the audio at strides 1 and 25 (a 3 s window through emotion2vec costs far more than prosody's
prefix sums).

    .venv/bin/python benchmarks/emotion_segments.py
    .venv/bin/python benchmarks/emotion_segments.py --minutes 10 --emotion2vec /weights/emotion2vec_plus_base
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from memo_zoo_plugins.datasets.talking_world.speech import VOICES, make_script, synthesize_script
from memo_zoo_plugins.emotion import emotion2vec, prosody
from memo_zoo.emotion.segments import label_audio_file

FPS = 25.0


def speech(minutes: float, seed: int = 0) -> np.ndarray:
    """``minutes`` of 16 kHz speech: 2 minutes of synthesised script tiled."""
    rng = np.random.default_rng(seed)
    pieces, total = [], 0
    voices = list(VOICES)
    while total < min(minutes, 2.0) * 60 * 16000:
        lines = make_script(rng, 4, ["angry", "happy", "sad", "neutral", "surprised", "fearful"])
        audio = synthesize_script(lines, voices[len(pieces) % len(voices)], seed=len(pieces)).samples
        pieces.append(audio)
        total += len(audio)
    block = np.concatenate(pieces)
    reps = int(np.ceil(minutes * 60 * 16000 / len(block)))
    return np.tile(block, reps)[: int(minutes * 60 * 16000)].astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> None:
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=16000)
        stream.layout = "mono"
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def timed(fn, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="audio length")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained prosody_mlp head (default: random)")
    parser.add_argument("--emotion2vec", type=Path, default=None, help="funasr emotion2vec folder to time as well")
    parser.add_argument("--e2v-seconds", type=float, default=60.0, help="audio length for the emotion2vec timing")
    parser.add_argument("--repeats", type=int, default=3, help="best of N for in-memory timings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emotion_bench_") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        audio = speech(args.minutes)
        wav = tmp / "speech.wav"
        write_wav(wav, audio)
        frames = int(round(len(audio) / 16000 * FPS))
        print(f"audio: {len(audio) / 16000 / 60:.1f} min, {frames} frames at {FPS:g} fps "
              f"(prepared in {time.perf_counter() - start:.1f} s); torch threads {torch.get_num_threads()}, "
              f"cores {os.cpu_count()}\n")
        checkpoint = args.checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            untrained = prosody.untrained(prosody.ProsodyMLPConfig(checkpoint=str(tmp / "random_head.safetensors")))
            checkpoint = untrained.with_head(untrained.new_head()).save(tmp / "random_head.safetensors")
        print("| detector | what | frames | seconds | x realtime |")
        print("|---|---|---:|---:|---:|")
        seconds_audio = len(audio) / 16000
        for stride in (1, 5):
            detector = prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(checkpoint), stride=stride))
            t, labels = timed(lambda: detector.frame_labels(torch.from_numpy(audio), 16000, FPS, frames), args.repeats)
            assert labels.shape == (frames,)
            print(f"| prosody_mlp | frame_labels, stride {stride} | {frames} | {t:.2f} | {seconds_audio / t:.0f} |")
        detector = prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(checkpoint)))
        cache = tmp / "cache"
        cold, first = timed(lambda: label_audio_file(detector, wav, FPS, frames, cache_dir=cache))
        warm, second = timed(lambda: label_audio_file(detector, wav, FPS, frames, cache_dir=cache))
        assert torch.equal(first, second)
        print(f"| prosody_mlp | label_audio_file, cold (decode + label + cache) | {frames} | {cold:.2f} | "
              f"{seconds_audio / cold:.0f} |")
        print(f"| prosody_mlp | label_audio_file, warm (cache hit) | {frames} | {warm:.3f} | "
              f"{seconds_audio / warm:.0f} |")
        if args.emotion2vec is not None:
            part = audio[: int(args.e2v_seconds * 16000)]
            part_frames = int(round(len(part) / 16000 * FPS))
            untrained = emotion2vec.untrained(emotion2vec.Emotion2vecMLPConfig(
                backbone=str(args.emotion2vec), head=str(tmp / "e2v_head.safetensors")))
            head_file = untrained.with_head(untrained.new_head()).save(tmp / "e2v_head.safetensors")
            for stride in (1, 25):
                detector = emotion2vec.build(emotion2vec.Emotion2vecMLPConfig(
                    backbone=str(args.emotion2vec), head=str(head_file), stride=stride))
                t, _ = timed(lambda: detector.frame_labels(torch.from_numpy(part), 16000, FPS, part_frames))
                print(f"| emotion2vec_mlp ({args.emotion2vec.name}) | frame_labels, stride {stride}, "
                      f"{len(part) / 16000:.0f} s | {part_frames} | {t:.2f} | {len(part) / 16000 / t:.1f} |")


if __name__ == "__main__":
    main()
