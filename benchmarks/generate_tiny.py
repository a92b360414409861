"""Seconds per generated frame and peak memory of ``generate_video`` (spec §6, §10 speed; issue 5).

Cases (random weights; linear_memory + multimodal_attention, MEMO's defaults; flow Euler, 20 steps,
joint CFG 3.5 batched with the conditional pass; one context update per clip, T6):

- ``tiny`` on CPU: the tiny preset on 64 px frames through the pixel VAE (patch 8: 192 x 8 x 8
  latents, the default talking world's setup), log_mel + conv encoders, 25 fps. Run for two audio
  lengths: peak RSS must not grow with the length (frames are streamed to the MP4 writer).
- ``sd15`` when CUDA is available: the SD1.5 geometry at 512 px (a random AutoencoderKL with SD1.5's
  config, saved to a temporary folder and loaded through the ``sd_vae`` plugin), 16-frame clips,
  30 fps, bf16 autocast. The authors report about 1 s per frame on an H100 (spec §10).

Each case also reports its floor: the model's FLOPs per frame (``torch.utils.flop_counter`` over a
one-clip video) over the device's measured matmul rate (fp32 on CPU, bf16 on CUDA), and the
ratio of the measured time to that floor.

    .venv/bin/python benchmarks/generate_tiny.py                     # tiny (CPU), + sd15 on a GPU
    .venv/bin/python benchmarks/generate_tiny.py --seconds 2 8 --threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memo_zoo.generate.config import GenerateConfig
from memo_zoo.generate.loading import load_generator_model
from memo_zoo.generate.pipeline import generate_video
from memo_zoo.generate.warning import GenerationWarning
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.loader import validate_document

os.environ.setdefault("MEMO_ZOO_PROGRESS", "0")


@dataclass
class Case:
    name: str
    recipe: dict
    size: int
    fps: float
    clip_frames: int
    device: str


def tiny_case(steps: int) -> Case:
    recipe = {
        "name": "bench-tiny", "seed": 0, "task": {"kind": "smoke"},
        "model": {"network": {"preset": "tiny", "latent_channels": 192},
                  "temporal": {"kind": "linear_memory"}, "audio_fusion": {"kind": "multimodal_attention"},
                  "audio_encoder": {"kind": "log_mel"}, "image_encoder": {"kind": "conv"},
                  "vae": {"kind": "pixel", "patch_size": 8}},
        "emotion_detector": {"kind": "fixed", "label": "neutral"},
        "scheduler": {"kind": "flow_euler", "steps": steps},
    }
    return Case("tiny", recipe, 64, 25.0, 16, "cpu")


def sd15_case(steps: int, vae_dir: Path) -> Case:
    recipe = {
        "name": "bench-sd15", "seed": 0, "task": {"kind": "smoke"},
        "model": {"network": {"preset": "sd15"},
                  "temporal": {"kind": "linear_memory"}, "audio_fusion": {"kind": "multimodal_attention"},
                  # Small encoders with the sd15 widths: wav2vec2 / face embeddings need local weights,
                  # and both encoders cost little next to the two UNets.
                  "audio_encoder": {"kind": "log_mel", "token_dim": 768, "hidden": 512},
                  "image_encoder": {"kind": "conv", "embed_dim": 512},
                  "vae": {"kind": "sd_vae", "weights": str(vae_dir)}},
        "emotion_detector": {"kind": "fixed", "label": "neutral"},
        "scheduler": {"kind": "flow_euler", "steps": steps},
    }
    return Case("sd15", recipe, 512, 30.0, 16, "cuda")


def random_sd_vae(folder: Path) -> Path:
    """A randomly initialised AutoencoderKL with SD1.5's VAE config (same cost as the real one)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=2, norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
    vae.save_pretrained(folder)
    return folder


def write_inputs(folder: Path, seconds: float) -> tuple[Path, Path]:
    """A noise portrait and ``seconds`` of a loudness-modulated tone (16 kHz WAV)."""
    from PIL import Image

    image = folder / "portrait.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(image)
    audio = folder / f"audio_{seconds:g}.wav"
    t = np.arange(int(round(seconds * 16_000))) / 16_000
    samples = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    with wave.open(str(audio), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16_000)
        handle.writeframes((samples * 32767).astype(np.int16).tobytes())
    return image, audio


class PeakRSS:
    """Peak resident memory of this process while the block runs (polled every 10 ms)."""

    def __enter__(self) -> "PeakRSS":
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _poll(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def matmul_rate(device: str) -> float:
    """Measured dense matmul FLOP/s: fp32 on CPU, bf16 on CUDA."""
    n = 1024 if device == "cpu" else 8192
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    repeats = 5 if device == "cpu" else 50
    a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


def run_case(case: Case, registry, folder: Path, seconds_list: list[float], steps: int, scale: float) -> list[dict]:
    from torch.utils.flop_counter import FlopCounterMode

    recipe = validate_document(case.recipe, registry, case.name)
    torch.manual_seed(0)
    model = load_generator_model(None, recipe, registry)
    rows = []

    def config(audio: Path, image: Path, out: str) -> GenerateConfig:
        return GenerateConfig(image=image, audio=audio, out=folder / out, size=case.size, fps=case.fps,
                              clip_frames=case.clip_frames, motion_frames=16, steps=steps, emotion="neutral",
                              cfg={"scale": scale}, device=case.device, check_face=False)

    # FLOPs of a one-clip video (reference + first context + 20 guided steps + VAE decode).
    image, one_clip = write_inputs(folder, case.clip_frames / case.fps)
    generate_video(model, config(one_clip, image, "warmup.mp4"), progress=False)  # warm-up (kernels, caches)
    with FlopCounterMode(display=False) as counter:
        generate_video(model, config(one_clip, image, "flops.mp4"), progress=False)
    flops_per_frame = counter.get_total_flops() / case.clip_frames
    floor = flops_per_frame / matmul_rate(case.device)
    for seconds in seconds_list:
        image, audio = write_inputs(folder, seconds)
        if case.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with PeakRSS() as rss:
            result = generate_video(model, config(audio, image, f"{case.name}_{seconds:g}.mp4"), progress=False)
        rows.append({
            "case": case.name, "device": case.device, "size": case.size, "audio_s": seconds, "frames": result.frames,
            "clips": result.clips, "steps": steps, "cfg": scale, "s_per_frame": result.seconds_per_frame,
            "frames_per_s": result.fps_rate, "peak_rss_mib": rss.peak / 2 ** 20,
            "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2 ** 20 if case.device == "cuda" else None,
            "gflops_per_frame": flops_per_frame / 1e9, "floor_s_per_frame": floor,
            "x_floor": result.seconds_per_frame / floor})
    return rows


def print_table(rows: list[dict]) -> None:
    columns = ["case", "device", "size", "audio_s", "frames", "clips", "steps", "cfg", "s_per_frame", "frames_per_s",
               "peak_rss_mib", "peak_gpu_mib", "gflops_per_frame", "floor_s_per_frame", "x_floor"]

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(cell(row[c]) for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 8.0],
                        help="audio lengths of the tiny case (peak RSS must not grow with them)")
    parser.add_argument("--sd15-seconds", type=float, nargs="+", default=[2.0], help="audio lengths of the sd15 case")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps (spec §10: 20)")
    parser.add_argument("--cfg", type=float, default=3.5, help="joint guidance scale (spec §10: 3.5)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op CPU threads (default: torch's)")
    parser.add_argument("--skip-sd15", action="store_true", help="only the tiny case, even with CUDA")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", GenerationWarning)  # random weights, noise portrait: expected here
    registry = load_registry()
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        rows += run_case(tiny_case(args.steps), registry, folder, args.seconds, args.steps, args.cfg)
        if torch.cuda.is_available() and not args.skip_sd15:
            case = sd15_case(args.steps, random_sd_vae(folder / "sd_vae"))
            rows += run_case(case, registry, folder, args.sd15_seconds, args.steps, args.cfg)
        else:
            print("sd15 case skipped: " + ("--skip-sd15" if args.skip_sd15 else "no CUDA device"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print_table(rows)
    if any(row["case"] == "sd15" for row in rows):
        sd15 = [row for row in rows if row["case"] == "sd15"][-1]
        print(f"sd15: {1.0 / sd15['s_per_frame']:.2f}x the authors' ~1 s per frame on an H100 (spec §10)")


if __name__ == "__main__":
    main()
