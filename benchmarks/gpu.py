"""Every GPU figure of issue 19 in one run: paper-size seconds per frame, peak memory, achieved
TFLOP/s per part, metric throughput in bf16 vs fp32 (spec §10 speed).

Written for a lent GPU (one H100 / H200; the paper-size run is meant to finish in under 4 minutes
with the defaults), as one script so that a short loan measures everything at once:

1. FLOP counts: ``benchmarks/cost.py``'s report for the same setting (counted on the meta device,
   about 20 s of CPU) or ``--cost FILE`` from an earlier ``cost.py --out``.
2. Per network family (``sd15``: the zoo's MemoNet with linear_memory + multimodal_attention;
   ``memo_released``: ReleasedMemoNet without weights), random weights in float32 under bf16
   autocast, as generation runs (``memo_zoo.generate.sampling``), 512 px (4 x 64 x 64 latents),
   16-frame clips, 16 motion frames, joint CFG with both levels batched, 20 flow Euler steps:

   - parts, each the median of ``--repeats`` after a warm-up: the per-clip reference pass
     (reference + 16 motion frames through the Reference Net, both levels), one guided denoising
     step, and the encoders below;
   - ``measured_s_per_frame``: ``--clips`` whole clips of the network loop run back to back and
     timed (reference pass; 20 guided steps with the CFG mix and the Euler update; the audio
     encoder on the clip's audio, its tokens fed to the network; the emotion encoder on the clip's
     16 windows; VAE decode of the 16 frames in chunks of 8; for ``memo_released`` the decoded
     motion frames encoded again, Q17), over the frames made. Random inputs; no file I/O, face
     embedding, vocal separation or MP4 encoding;
   - ``extrapolated_s_per_frame``: the same loop added up from the part medians, per frame;
   - peak memory: ``torch.cuda.max_memory_allocated`` from the family's build to its last timing
     (the shared encoders resident too);
   - achieved TFLOP/s per part: cost.py's FLOPs of that part over its median time.
3. Encoders, shared: diffusers' AutoencoderKL with sd-vae-ft-mse's config (decode and encode of a
   512 px frame), wav2vec2-base (+ the 32 x 768 token projector) over a clip's audio, and the
   24-layer 1024-d emotion2vec equivalent on 3 s windows (cost.py says why an equivalent).
4. Metric throughput: FID and FVD (benchmarks/metric_throughput.py's random networks in the
   real file formats, its synthetic videos and timing) in float32, bfloat16 and (CUDA) float16:
   videos/s and the distance's relative difference to float32.

Nothing is made up where there is no GPU: without CUDA only ``--smoke`` runs (CPU, tiny sizes,
every code path, seconds; what tests/unit/test_benchmark_scripts.py runs).

    .venv/bin/python benchmarks/gpu.py --out gpu.json                      # on the lent GPU
    .venv/bin/python benchmarks/gpu.py --out gpu.json --cost cost.json     # counts from cost.py --out
    .venv/bin/python benchmarks/gpu.py --smoke --out smoke.json            # CPU, tiny
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from memo_zoo.plugin.manager import load_registry

import cost  # benchmarks/cost.py: this script's folder is on sys.path when it is run
import metric_throughput as mt  # benchmarks/metric_throughput.py

DECODE_CHUNK = 8  # frames per VAE call, as memo_zoo.generate.sampling decodes
CFG_SCALE = 3.5   # joint guidance (§10): out = 3.5 cond - 2.5 uncond
METRIC_KINDS = ("fid", "fvd")


_STARTED = time.perf_counter()


def progress(text: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:5.0f} s] {text}", file=sys.stderr, flush=True)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    def once() -> float:
        synchronise(device)
        start = time.perf_counter()
        fn()
        synchronise(device)
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


# ---- the generation loop ------------------------------------------------------------------------

class Encoders:
    """The VAE, audio and emotion encoders of cost.py's setting, random weights on ``device``."""

    def __init__(self, setting: cost.Setting, device: torch.device):
        self.setting, self.device = setting, device
        self.vae = cost.build_vae(setting, device)
        self.audio = cost.build_wav2vec2(setting.wav2vec2, device)
        self.projector = cost.build_audio_projector(setting, device)
        self.emotion = cost.build_wav2vec2(setting.emotion, device)
        c, s = setting.vae["latent_channels"], setting.latent_side
        self.side = s * 2 ** (len(setting.vae["block_out_channels"]) - 1)
        g = torch.Generator(device=device).manual_seed(0)
        self.latents = torch.randn(setting.frames, c, s, s, generator=g, device=device)
        self.window = torch.randn(1, int(round(setting.emotion_seconds * cost.SAMPLE_RATE)), generator=g, device=device)

    def audio_tokens(self) -> torch.Tensor:
        """(1, F, 32, audio_dim): the clip's audio through wav2vec2 and the projector (A5)."""
        return cost.audio_pass(self.audio, self.projector, self.setting, self.device)

    def emotion_windows(self) -> torch.Tensor:
        """The clip's F windows (one per frame, E5) through the emotion backbone as one batch."""
        return self.emotion(self.window.repeat(self.setting.frames, 1)).last_hidden_state

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.vae.decode(latents[i:i + DECODE_CHUNK]).sample
                          for i in range(0, latents.shape[0], DECODE_CHUNK)])

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.vae.encode(pixels[i:i + DECODE_CHUNK]).latent_dist.mean
                          for i in range(0, pixels.shape[0], DECODE_CHUNK)])


def clip_loop(net: torch.nn.Module, inputs: cost.Inputs, encoders: Encoders, setting: cost.Setting,
              reencode: bool) -> torch.Tensor:
    """One clip of generation's network work (see the module docstring); returns the decoded frames."""
    tokens = cost.image_tokens(net, inputs, setting.levels)
    reference, state = cost.reference_pass(net, inputs, tokens)
    audio = encoders.audio_tokens().to(inputs.audio.dtype)
    audio = torch.cat([audio] + [torch.zeros_like(audio)] * (setting.levels - 1))  # no audio when unconditional
    encoders.emotion_windows()
    weights = [CFG_SCALE] + [(1 - CFG_SCALE) / (setting.levels - 1)] * (setting.levels - 1)
    x = inputs.latents.float()
    times = torch.linspace(1.0, 0.0, setting.steps + 1).tolist()
    for t, t_next in zip(times[:-1], times[1:]):
        step = replace(inputs, latents=x, audio=audio, time=torch.full_like(inputs.time, t))
        out = cost.guided_step(net, step, tokens, reference, state).float()
        velocity = sum(w * out[i:i + 1] for i, w in enumerate(weights))
        x = x + (t_next - t) * velocity
    frames = encoders.decode(x[0])
    if reencode:  # Q17: the next clip's motion frames are the decoded ones encoded again
        encoders.encode(frames[-setting.motion_frames:].clamp(-1, 1))
    return frames


def family_figures(family: cost.Family, setting: cost.Setting, counts: Mapping[str, Any], encoders: Encoders,
                   device: torch.device, repeats: int, clips: int, registry) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    started = time.perf_counter()
    net = cost.build_family(family, setting, device, registry)
    build_s = time.perf_counter() - started
    inputs = cost.make_inputs(net, setting, device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16)
    with torch.inference_mode(), amp:
        tokens = cost.image_tokens(net, inputs, setting.levels)
        reference, state = cost.reference_pass(net, inputs, tokens)
        parts = {"reference_net_per_clip": timed(lambda: cost.reference_pass(net, inputs, tokens), device, repeats),
                 "diffusion_net_per_step": timed(lambda: cost.guided_step(net, inputs, tokens, reference, state),
                                                 device, repeats)}
        progress(f"{family.name}: reference pass {parts['reference_net_per_clip']:.3f} s, "
                 f"step {parts['diffusion_net_per_step']:.3f} s")
        clip_loop(net, inputs, encoders, setting, family.reencode_motion)  # warm-up
        synchronise(device)
        start = time.perf_counter()
        for _ in range(clips):
            clip_loop(net, inputs, encoders, setting, family.reencode_motion)
        synchronise(device)
        loop_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    flops = counts["families"][family.name]
    achieved = {"reference_net_per_clip": flops["reference_net_per_clip"] / parts["reference_net_per_clip"] / 1e12,
                "diffusion_net_per_step": flops["diffusion_net_per_step"] / parts["diffusion_net_per_step"] / 1e12}
    frames = clips * setting.frames
    return {"build_s": build_s, "part_s": parts, "achieved_tflops": achieved, "clips_timed": clips,
            "loop_s": loop_s, "measured_s_per_frame": loop_s / frames,
            "per_clip_flops_total": flops["per_frame"]["parts"]["total"] * setting.frames,
            "loop_achieved_tflops": flops["per_frame"]["parts"]["total"] * frames / loop_s / 1e12,
            "peak_memory_gib": peak}


def encoder_figures(encoders: Encoders, counts: Mapping[str, Any], device: torch.device,
                    repeats: int) -> dict[str, Any]:
    setting = encoders.setting
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
        pixels = encoders.decode(encoders.latents).clamp(-1, 1)
        per_clip = {"vae_decode": timed(lambda: encoders.decode(encoders.latents), device, repeats),
                    "vae_encode": timed(lambda: encoders.encode(pixels), device, repeats),
                    "audio_encoder": timed(encoders.audio_tokens, device, repeats),
                    "emotion_encoder": timed(encoders.emotion_windows, device, repeats)}
    f = setting.frames
    seconds = {"vae_decode_per_frame": per_clip["vae_decode"] / f, "vae_encode_per_frame": per_clip["vae_encode"] / f,
               "audio_encoder_per_clip": per_clip["audio_encoder"],
               "emotion_encoder_per_window": per_clip["emotion_encoder"] / f}
    flops = counts["encoders"]
    return {"part_s": seconds, "achieved_tflops": {k: flops[k] / s / 1e12 for k, s in seconds.items()}}


def extrapolated(setting: cost.Setting, family: cost.Family, fam: Mapping[str, Any], enc: Mapping[str, Any]) -> float:
    """Seconds per frame of ``clip_loop`` added up from the part medians."""
    p, e, f = fam["part_s"], enc["part_s"], setting.frames
    clip = (p["reference_net_per_clip"] + setting.steps * p["diffusion_net_per_step"] + e["audio_encoder_per_clip"])
    per_frame = e["vae_decode_per_frame"] + e["emotion_encoder_per_window"]
    if family.reencode_motion:
        per_frame += e["vae_encode_per_frame"] * setting.motion_frames / f
    return clip / f + per_frame


# ---- metric throughput --------------------------------------------------------------------------

def metric_figures(device: torch.device, smoke: bool, videos: int, frames: int, size: int,
                   kinds: tuple[str, ...] = METRIC_KINDS) -> dict[str, Any]:
    """FID and FVD per dtype on metric_throughput.py's synthetic set: videos/s and the distance's
    relative difference to float32. ``smoke``: one frame a video for FID, 8-frame FVD clips fed at 32 px."""
    from memo_zoo_eval.metrics import fid, fvd

    dtypes = ["float32", "bfloat16"] + (["float16"] if device.type == "cuda" else [])
    out: dict[str, Any] = {"videos": videos, "frames": frames, "size": size, "by_metric": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_metrics_") as temp:
        files = mt.weight_files(list(kinds), Path(temp), None, "", 18)
        pairs, warmup = mt.video_set(videos, frames, size, 0)
        for kind in kinds:
            rows, base = {}, None
            for dtype in dtypes:
                if kind == "fid":
                    config = fid.FidConfig(weights=files[kind].path, device=str(device), dtype=dtype,
                                           frame_stride=frames if smoke else 1)  # smoke: one frame a video
                    metric = fid.build(config)
                else:
                    small = ({"clip_length": 8, "clip_stride": 8, "resize_in_network": False, "size": 32}
                             if smoke else {})
                    metric = fvd.build(fvd.FvdConfig(weights=files[kind].path, device=str(device), dtype=dtype,
                                                     **small))
                metric.prepare()
                timing = mt.timed_run(metric, pairs, None if smoke else warmup, str(device), compute=False,
                                      min_seconds=0.0 if smoke else 1.0)
                distance = mt.symmetric_frechet(*timing.stats)
                base = distance if base is None else base
                rows[dtype] = {"update_s": timing.update_s, "videos_per_s": len(pairs) / timing.update_s,
                               "frames_per_s": len(pairs) * frames / timing.update_s, "distance": distance,
                               "relative_difference_to_float32": abs(distance - base) / abs(base) if base else None}
                progress(f"{kind} {dtype}: {rows[dtype]['videos_per_s']:.2f} videos/s, distance {distance:.6g}")
            out["by_metric"][kind] = rows
    return out


# ---- main ---------------------------------------------------------------------------------------

def load_counts(path: str | None, setting: cost.Setting) -> dict[str, Any]:
    """cost.py's report for ``setting``: read from ``path`` (it must be of the same setting) or counted now."""
    if path is None:
        return cost.report(setting)
    with open(path, encoding="utf-8") as handle:
        counts = json.load(handle)
    wanted = json.loads(json.dumps(cost.report_setting(setting)))
    if counts.get("setting") != wanted:
        flag = " --smoke" if setting is cost.SMOKE else ""
        raise SystemExit(f"--cost {path}: its setting is not this run's ({'smoke' if flag else 'paper'} size); "
                         f"rerun benchmarks/cost.py{flag} --out {path}")
    return counts


def markdown(result: Mapping[str, Any]) -> str:
    rows = ["| family | measured s / frame | extrapolated s / frame | reference pass s / clip (TFLOP/s) | "
            "guided step s (TFLOP/s) | whole loop TFLOP/s | peak GiB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, f in result["families"].items():
        peak = "-" if f["peak_memory_gib"] is None else f"{f['peak_memory_gib']:.1f}"
        rows.append(f"| `{name}` | {f['measured_s_per_frame']:.3f} | {f['extrapolated_s_per_frame']:.3f} | "
                    f"{f['part_s']['reference_net_per_clip']:.3f} "
                    f"({f['achieved_tflops']['reference_net_per_clip']:.0f}) | "
                    f"{f['part_s']['diffusion_net_per_step']:.3f} "
                    f"({f['achieved_tflops']['diffusion_net_per_step']:.0f}) | "
                    f"{f['loop_achieved_tflops']:.0f} | {peak} |")
    rows += ["", "| encoder part | s | TFLOP/s |", "|---|---:|---:|"]
    enc = result["encoders"]
    for key, seconds in enc["part_s"].items():
        rows.append(f"| {key} | {seconds:.4f} | {enc['achieved_tflops'][key]:.1f} |")
    rows += ["", "| metric | dtype | videos/s | rel. diff. to float32 |", "|---|---|---:|---:|"]
    for kind, by_dtype in result["metrics"]["by_metric"].items():
        for dtype, r in by_dtype.items():
            diff = "-" if r["relative_difference_to_float32"] is None else f"{r['relative_difference_to_float32']:.2e}"
            rows.append(f"| {kind} | {dtype} | {r['videos_per_s']:.2f} | {diff} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: every code path in seconds")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--cost", default=None, help="cost.py --out JSON of the same setting (else counted now)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per part (default 5; smoke 1)")
    parser.add_argument("--clips", type=int, default=None, help="whole clips timed per family (default 2; smoke 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (smoke default: 1)")
    parser.add_argument("--metrics", nargs="+", default=list(METRIC_KINDS), choices=METRIC_KINDS,
                        help="metrics to measure (default: both; FID's network takes ~20 s to build on a CPU)")
    parser.add_argument("--metric-videos", type=int, default=4, help="videos per metric pass (smoke: 2)")
    parser.add_argument("--metric-frames", type=int, default=48, help="frames per metric video (smoke: 8)")
    parser.add_argument("--metric-size", type=int, default=256, help="metric video side in px (smoke: 32)")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA device here: the figures need a GPU (--smoke runs the code paths on the CPU)")
    device = torch.device("cpu" if args.smoke else "cuda")
    if args.threads or args.smoke:  # tiny CPU work runs faster on one thread than on shared cores
        torch.set_num_threads(args.threads or 1)
    setting = cost.SMOKE if args.smoke else cost.PAPER
    repeats = args.repeats or (1 if args.smoke else 5)
    clips = args.clips or (1 if args.smoke else 2)
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated", category=FutureWarning)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast, as a deployment runs them
        torch.backends.cudnn.allow_tf32 = True

    started = time.perf_counter()
    counts = load_counts(args.cost, setting)
    progress("FLOP counts ready")
    registry = load_registry(disabled=())
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke: figures mean nothing)",
        "torch": torch.__version__, "smoke": args.smoke, "setting": counts["setting"], "autocast": "bfloat16",
        "weights": "random (float32 parameters)", "repeats": repeats,
        "measured_vs_extrapolated": "measured_s_per_frame: whole clips of the network loop timed; "
                                    "extrapolated_s_per_frame: the loop added up from part medians",
        "families": {}}
    encoders = Encoders(setting, device)
    result["encoders"] = encoder_figures(encoders, counts, device, repeats)
    progress(f"encoders: {result['encoders']['part_s']}")
    for family in cost.FAMILIES:
        fam = family_figures(family, setting, counts, encoders, device, repeats, clips, registry)
        fam["extrapolated_s_per_frame"] = extrapolated(setting, family, fam, result["encoders"])
        fam["floor_s_per_frame"] = counts["families"][family.name]["floor_s_per_frame"]
        result["families"][family.name] = fam
        progress(f"{family.name}: {fam['measured_s_per_frame']:.3f} s per frame measured")
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    del encoders
    smoke = args.smoke
    result["metrics"] = metric_figures(device, smoke, 2 if smoke else args.metric_videos,
                                       8 if smoke else args.metric_frames, 32 if smoke else args.metric_size,
                                       tuple(args.metrics))
    result["seconds"] = time.perf_counter() - started
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    print(markdown(result))
    progress(f"total {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
