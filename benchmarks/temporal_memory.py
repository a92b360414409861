"""Cost per clip of MEMO's linear memory (spec T1-T4) vs the self-attention baseline (T7).

Spec §2 property (b): the linear memory's time and peak memory per clip must not depend on how many
past frames it has seen, while self-attention over the last N motion frames grows with N. For each
past-frame count this script builds the context, then measures separately

- read:   ``module(x, ctx)``, run at every denoising step of a clip;
- update: ``module.update_context(ctx, motion)``, run once per clip (T6);

and reports median wall time, peak tensor memory, context size and achieved FLOP/s next to a plain
square matmul of the same FLOP count. Prints a markdown table.

    python benchmarks/temporal_memory.py --size tiny                 # CPU, about a minute
    python benchmarks/temporal_memory.py --size sd15 --device cuda   # paper sizes, bf16
"""

from __future__ import annotations

import argparse
import statistics
import time
import weakref
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from memo_zoo_plugins.temporal import linear_memory, self_attention


@dataclass(frozen=True)
class Layer:
    channels: int
    resolution: int


SIZES: dict[str, tuple[Layer, ...]] = {
    "tiny": (Layer(64, 16),),
    # The three SD1.5 UNet widths at the latent resolution each one runs at for 512 px video.
    "sd15": (Layer(320, 64), Layer(640, 32), Layer(1280, 16)),
}
DEFAULT_DTYPE = {"tiny": "float32", "sd15": "bfloat16"}


class PeakTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storage allocated inside the region and still alive.

    CPU has no allocator statistics like ``torch.cuda.max_memory_allocated`` and tracemalloc does
    not see torch's allocator, so this follows every op's outputs and their lifetimes instead.
    Kernels' private scratch space is not seen; inputs allocated before the region do not count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._tracked: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        self._tracked.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self._tracked:
                continue
            self._tracked.add(key)
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._release, key, nbytes)
        return out


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        result = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del result
        return peak
    with PeakTensorBytes() as tracker:
        result = fn()
        del result
    return tracker.peak


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


_MATMUL_RATE: dict[int, float] = {}


def matmul_rate(flops: int, dtype: torch.dtype, device: torch.device, warmup: int, repeats: int) -> float:
    """FLOP/s of a square matmul doing about ``flops`` FLOPs (same dtype and device)."""
    n = max(32, min(8192, round((flops / 2) ** (1 / 3))))
    if n not in _MATMUL_RATE:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        _MATMUL_RATE[n] = 2 * n**3 / median_seconds(lambda: a @ b, device, warmup, repeats)
    return _MATMUL_RATE[n]


def context_bytes(ctx: object) -> int:
    tensors = [v for v in vars(ctx).values() if isinstance(v, torch.Tensor)]
    return sum(t.untyped_storage().nbytes() for t in tensors)


def build_module(kind: str, layer: Layer, past: int, clip: int, heads: int):
    if kind == "linear_memory":
        return linear_memory.build(linear_memory.LinearMemoryConfig(heads=heads), channels=layer.channels)
    config = self_attention.SelfAttentionConfig(heads=heads, motion_frames=past, max_positions=past + clip)
    return self_attention.build(config, channels=layer.channels)


def measure(kind: str, layer: Layer, past: int, args, device: torch.device, dtype: torch.dtype) -> dict:
    torch.manual_seed(0)
    module = build_module(kind, layer, past, args.clip_frames, args.heads).to(device=device, dtype=dtype).eval()
    shape = (args.batch, args.clip_frames, layer.channels, layer.resolution, layer.resolution)
    x = torch.randn(shape, device=device, dtype=dtype)
    motion = torch.randn(shape, device=device, dtype=dtype)
    ctx = module.new_context(args.batch)
    # The history is fed one clip at a time, exactly as autoregressive generation does (I1, T6).
    for start in range(0, past, args.clip_frames):
        history = torch.randn(shape, device=device, dtype=dtype)[:, : min(args.clip_frames, past - start)]
        ctx = module.update_context(ctx, history)

    def read():
        return module(x, ctx)

    def update():
        return module.update_context(ctx, motion)

    row = {"kind": kind, "layer": layer, "past": past, "context": context_bytes(ctx)}
    for name, fn in (("read", read), ("update", update)):
        row[f"{name}_s"] = median_seconds(fn, device, args.warmup, args.repeats)
        row[f"{name}_peak"] = peak_bytes(fn, device)
        row[f"{name}_flops"] = matmul_flops(fn)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--past", type=int, nargs="+", default=[16, 64, 256, 1024],
                        help="past-frame counts (memory history / self-attention N)")
    parser.add_argument("--clip-frames", type=int, default=16, help="frames generated per clip (I1)")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="denoising steps per clip (§10: 20)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                        help="default: float32 for tiny, bfloat16 for sd15")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or DEFAULT_DTYPE[args.size])
    mib = 1024**2
    print(f"device={device} dtype={dtype} batch={args.batch} clip={args.clip_frames} frames "
          f"heads={args.heads} steps/clip={args.steps} threads={torch.get_num_threads()}")
    print()
    print("| layer C@HxW | module | past frames | read ms | update ms | clip ms (steps x read + update) "
          "| read peak MiB | update peak MiB | context MiB | read GFLOP/s | matmul GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with torch.no_grad():
        for layer in SIZES[args.size]:
            for kind in ("linear_memory", "self_attention"):
                for past in args.past:
                    r = measure(kind, layer, past, args, device, dtype)
                    read_rate = r["read_flops"] / r["read_s"]
                    reference = matmul_rate(r["read_flops"], dtype, device, args.warmup, args.repeats)
                    clip_ms = 1e3 * (args.steps * r["read_s"] + r["update_s"])
                    print(f"| {layer.channels}@{layer.resolution}x{layer.resolution} | {kind} | {past} "
                          f"| {1e3 * r['read_s']:.3f} | {1e3 * r['update_s']:.3f} | {clip_ms:.1f} "
                          f"| {r['read_peak'] / mib:.2f} | {r['update_peak'] / mib:.2f} "
                          f"| {r['context'] / mib:.2f} | {read_rate / 1e9:.1f} | {reference / 1e9:.1f} |",
                          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
