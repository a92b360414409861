"""Throughput of the evaluation metrics in videos and frames per second, and FID / FVD in reduced precision (issue 7).

A fixed, seeded set of synthetic videos (``--videos`` x ``--frames`` at 25 fps per ``--sizes``
side: smooth random colour fields as ground truth, the "generated" video the same with pixel
noise; a 16 kHz noise track of the same length, a reference image, talking_world-style per-frame
truth) is measured by ``fid``, ``fvd``, ``sync``, ``identity`` and the four world metrics, each pair
passed to ``update(generated, ground_truth)`` as the evaluation runner does (the Frechet metrics
measure the ground-truth video too). Per metric: ``prepare()`` seconds (loading the network);
one warm-up video (first-call costs: TorchScript profiling, oneDNN / cuDNN kernel choice; every
network resizes to its own side, so one serves all sizes); per size, the seconds of one pass of
``update`` over the set (passes repeated until 1 s has passed, for the fast metrics' sake);
``compute()``'s seconds once (it sees features only, the same for every size).
Videos/s and frames/s are generated videos and their frames over the update loop's seconds.

Networks: random initialisation (BatchNorm statistics set from one pass over noise, so that
activations have the scale of a trained network's), saved to a temporary folder in the file
format each metric loads: the FID Inception-v3 state dict with its 1008-way fc, run by
torchmetrics; the SyncNet state dict; and, as TorchScript with the released files' calling
conventions, an I3D (Inception-v1 inflated, Carreira & Zisserman 2017) and an ArcFace IResNet
written here with the real networks' layers, so their cost is the architectures' but not
necessarily that of the released TorchScript files. Figures are about speed, not quality.
``--weights-dir`` uses the real files found there instead (``pt_inception-2015-12-05-6726825d.pth``,
``i3d_torchscript.pt``, ``syncnet_v2.model``, ``--identity-weights``). World metrics:
``--measurer``, else the default world's cached measurer (``<MEMO_ZOO_CACHE_DIR>/world_measurers/``),
else one trained for a few seconds on a tiny world with the default architecture (the same speed;
meaningless readings).

Reduced precision: ``fid`` and ``fvd`` on the first size's videos again with ``dtype: bfloat16``
(and ``float16`` on CUDA): the distance's relative difference to float32, and whether it is within
0.1 %. Distances by ``symmetric_frechet`` (below): with fewer frames than FID's 2048 features
the covariances are singular and the metric's own ``compute()`` may fail, as the reference FID
code does.

    .venv/bin/python benchmarks/metric_throughput.py --threads 2
    .venv/bin/python benchmarks/metric_throughput.py --device cuda --videos 8 --frames 64
    .venv/bin/python benchmarks/metric_throughput.py --weights-dir "$MEMO_ZOO_WEIGHTS_DIR"
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memo_zoo.data.media import AUDIO_RATE
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError
from memo_zoo.eval.frechet import FrechetMetric, GaussianStats
from memo_zoo_eval.metrics import fid, fvd, identity, sync
from memo_zoo.eval.protocol import VideoSample
from memo_zoo.slots.metric import Metric
from memo_zoo_plugins.datasets.talking_world.measure import metrics as wm
from memo_zoo_plugins.datasets.talking_world.measure import store
from memo_zoo_plugins.datasets.talking_world.measure.training import MeasurerTraining, train_measurer
from memo_zoo_plugins.datasets.talking_world.world import WorldConfig, generate

FPS = 25.0
# The released FVD network and the stand-ins are TorchScript, which torch marks deprecated: expected
warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated", category=FutureWarning)
Pair = tuple[VideoSample, VideoSample]


# ---- synthetic videos ---------------------------------------------------------------------------

def synthetic_pair(id: str, rng: np.random.Generator, frames: int, size: int) -> Pair:
    """(generated, ground truth): the ground truth is smooth random colour fields moving over time
    (random 8x8 grids every 16 frames, interpolated in space and time); the generated video is it
    with pixel noise and a brightness shift, so that distances between the two sets are of a real
    difference rather than sampling noise alone. The generated one carries audio noise of its length
    at 16 kHz, its first frame as reference image and the per-frame truth the world metrics read."""
    keys = torch.from_numpy(rng.uniform(0, 255, (1, 3, frames // 16 + 2, 8, 8)).astype(np.float32))
    smooth = F.interpolate(keys, size=(frames, size, size), mode="trilinear", align_corners=True)
    smooth = smooth[0].permute(1, 2, 3, 0).numpy()
    truth_frames = np.clip(smooth, 0, 255).round().astype(np.uint8)
    noisy = smooth + rng.normal(10.0, 12.0, smooth.shape).astype(np.float32)
    generated_frames = np.clip(noisy, 0, 255).round().astype(np.uint8)
    audio = (rng.standard_normal(int(round(frames / FPS * AUDIO_RATE))) * 0.1).astype(np.float32)
    truth = {"mouth_open": rng.uniform(0, 1, frames),
             "emotion": rng.integers(0, len(PAPER_LABELS), frames).astype(np.float64),
             "intensity": rng.uniform(0, 1, frames)}
    generated = VideoSample(id=id, frames=generated_frames, fps=FPS, audio=audio,
                            reference_image=truth_frames[0].copy(), truth=truth)
    return generated, VideoSample(id=id, frames=truth_frames, fps=FPS)


def video_set(count: int, frames: int, size: int, seed: int) -> tuple[list[Pair], Pair]:
    """``count`` (generated, ground truth) pairs and one warm-up pair, all of one shape."""
    rng = np.random.default_rng([seed, size])
    pairs = [synthetic_pair(f"v{i}", rng, frames, size) for i in range(count + 1)]
    warmup = pairs.pop()
    return pairs, (replace(warmup[0], id="warmup"), warmup[1])


# ---- stand-in networks with the real layer shapes -----------------------------------------------

def conv_bn_relu3d(cin: int, cout: int, kernel: tuple[int, int, int], stride: int = 1) -> nn.Sequential:
    # symmetric padding instead of TensorFlow's "same": the same cost, the shapes the pools expect
    return nn.Sequential(nn.Conv3d(cin, cout, kernel, stride=stride, padding=tuple(k // 2 for k in kernel),
                                   bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class InceptionBlock3d(nn.Module):
    """I3D's Mixed block: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | pool -> 1x1, concatenated."""

    def __init__(self, cin: int, b0: int, b1: tuple[int, int], b2: tuple[int, int], b3: int):
        super().__init__()
        self.b0 = conv_bn_relu3d(cin, b0, (1, 1, 1))
        self.b1 = nn.Sequential(conv_bn_relu3d(cin, b1[0], (1, 1, 1)), conv_bn_relu3d(b1[0], b1[1], (3, 3, 3)))
        self.b2 = nn.Sequential(conv_bn_relu3d(cin, b2[0], (1, 1, 1)), conv_bn_relu3d(b2[0], b2[1], (3, 3, 3)))
        self.b3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), conv_bn_relu3d(cin, b3, (1, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], dim=1)


class I3D(nn.Module):
    """Kinetics-400 I3D's layers (Mixed_3b .. Mixed_5c widths) with ``i3d_torchscript.pt``'s call:
    ``net(x, rescale, resize, return_features)`` on float (N, 3, T, H, W); 400 features."""

    def __init__(self, classes: int = 400):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn_relu3d(3, 64, (7, 7, 7), stride=2), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            conv_bn_relu3d(64, 64, (1, 1, 1)), conv_bn_relu3d(64, 192, (3, 3, 3)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.mixed = nn.Sequential(
            InceptionBlock3d(192, 64, (96, 128), (16, 32), 32), InceptionBlock3d(256, 128, (128, 192), (32, 96), 64),
            nn.MaxPool3d(3, 2, 1),
            InceptionBlock3d(480, 192, (96, 208), (16, 48), 64), InceptionBlock3d(512, 160, (112, 224), (24, 64), 64),
            InceptionBlock3d(512, 128, (128, 256), (24, 64), 64), InceptionBlock3d(512, 112, (144, 288), (32, 64), 64),
            InceptionBlock3d(528, 256, (160, 320), (32, 128), 128),
            nn.MaxPool3d(2, 2),
            InceptionBlock3d(832, 256, (160, 320), (32, 128), 128),
            InceptionBlock3d(832, 384, (192, 384), (48, 128), 128))
        self.logits = nn.Conv3d(1024, classes, 1)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=[x.shape[2], 224, 224], mode="trilinear", align_corners=False)
        features = self.logits(self.mixed(self.stem(x)).mean(dim=(2, 3, 4), keepdim=True)).flatten(1)
        return features if return_features else features.softmax(dim=1)


class IBasicBlock(nn.Module):
    """insightface's IResNet block: BN, 3x3, BN, PReLU, 3x3 (stride), BN, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.PReLU(cout), nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class IResNet(nn.Module):
    """ArcFace's IResNet on 112x112 crops in [-1, 1] -> 512-d embedding (r18 / r50 / r100)."""

    DEPTHS = {18: (2, 2, 2, 2), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}

    def __init__(self, layers: int = 50):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)]
        cin = 64
        for width, count in zip((64, 128, 256, 512), self.DEPTHS[layers]):
            blocks += [IBasicBlock(cin, width, 2)] + [IBasicBlock(width, width, 1) for _ in range(count - 1)]
            cin = width
        blocks.append(nn.BatchNorm2d(512))
        self.body = nn.Sequential(*blocks)
        self.fc = nn.Linear(512 * 7 * 7, 512)
        self.features = nn.BatchNorm1d(512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.fc(self.body(x).flatten(1)))


# ---- weight files -------------------------------------------------------------------------------

@torch.no_grad()
def calibrate_batchnorm(net: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics from one training-mode pass over ``inputs``.

    With random weights and the default statistics (mean 0, variance 1) activations shrink layer
    after layer: the FID Inception's features came out near 1e-8 and the distances near 1e-16, too
    small for a precision comparison to mean anything, and small enough to risk denormal numbers,
    which are slow on CPUs. Statistics of real activations give every layer unit-scale output, as
    in a trained network."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative mean over the pass, not a running blend with 0 / 1
    net.train()
    net(*inputs)
    return net.eval()


def noise(*shape: int) -> torch.Tensor:
    return torch.rand(*shape) * 2 - 1  # network input scale, [-1, 1]


@dataclass(frozen=True)
class Weights:
    path: str
    what: str  # shown in the table: the network, and whether its weights are real or random


def weight_files(kinds: list[str], folder: Path, weights_dir: Path | None, identity_name: str,
                 arcface_layers: int) -> dict[str, Weights]:
    """Per metric kind in ``kinds``: the real file from ``weights_dir`` when it is there, else
    random weights written to ``folder`` in the format the metric reads."""
    from torchvision.models import inception_v3

    def real(name: str, what: str) -> Weights | None:
        path = weights_dir / name if weights_dir is not None else None
        return Weights(str(path), f"{what}, real weights") if path is not None and path.is_file() else None

    def fid_file() -> Weights:
        net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
        torch.save(calibrate_batchnorm(net, noise(8, 3, 299, 299)).state_dict(), folder / "inception1008.pth")
        return Weights(str(folder / "inception1008.pth"), "FID Inception-v3 layout, random")

    def fvd_file() -> Weights:
        net = calibrate_batchnorm(I3D(), noise(2, 3, 16, 224, 224))
        torch.jit.save(torch.jit.script(net), str(folder / "i3d.pt"))
        return Weights(str(folder / "i3d.pt"), "I3D layers (stand-in TorchScript), random")

    def sync_file() -> Weights:
        net = sync.SyncNet()
        calibrate_batchnorm(net.netcnnlip, noise(2, 3, 5, 224, 224) * 128 + 128)  # BGR in [0, 255]
        calibrate_batchnorm(net.netcnnaud, torch.randn(8, 1, 13, 20) * 10)  # MFCC scale
        calibrate_batchnorm(net.netfclip, torch.randn(8, 512))
        calibrate_batchnorm(net.netfcaud, torch.randn(8, 512))
        torch.save(net.state_dict(), folder / "syncnet.model")
        return Weights(str(folder / "syncnet.model"), "SyncNet layout, random")

    def identity_file() -> Weights:
        net = calibrate_batchnorm(IResNet(arcface_layers), noise(8, 3, 112, 112))
        torch.jit.save(torch.jit.script(net), str(folder / "arcface.pt"))
        return Weights(str(folder / "arcface.pt"), f"IResNet-{arcface_layers} (stand-in TorchScript), random")

    sources = {"fid": ("pt_inception-2015-12-05-6726825d.pth", "FID Inception-v3", fid_file),
               "fvd": ("i3d_torchscript.pt", "I3D TorchScript", fvd_file),
               "sync": ("syncnet_v2.model", "SyncNet", sync_file),
               "identity": (identity_name, "face network", identity_file)}
    torch.manual_seed(0)
    files: dict[str, Weights] = {}
    for kind, (name, what, make) in sources.items():
        if kind in kinds:
            files[kind] = real(name, what) or make()
    return files


def world_measurer(given: str | None, folder: Path, threads: int | None) -> Weights:
    """``--measurer``, else the default world's cached measurer, else one trained on a tiny world."""
    if given:
        return Weights(given, "world measurer, given file")
    cached = store.cache_path(WorldConfig(), MeasurerTraining())
    if cached.is_file() and store.report_path(cached).is_file():
        return Weights(str(cached), "world measurer, default (cached)")
    # Default architecture (64 px input, width 16), so its speed is the default measurer's; one
    # epoch on a 4-identity world of 1-1.5 s clips, so its readings mean nothing.
    world = WorldConfig(root=folder / "world", identities=4, test_identities=2, clips_per_identity=2,
                        seconds=(1.0, 1.5), long_clips=0, size=64, workers=1)
    generate(world, progress=False)
    options = MeasurerTraining(epochs=1, frame_stride=2, balanced_frames=8, batch_size=16, identity_check_frames=24,
                               threads=threads)
    measurer, report = train_measurer(world, options, progress=False)
    path = store.save_measurer(measurer, report, folder / "measurer.safetensors")
    return Weights(str(path), "world measurer, default shape, trained 1 epoch on a tiny world")


WORLD_BUILDERS = {"world_lip_sync": (wm.build_lip_sync, wm.WorldLipSyncConfig),
                  "world_identity": (wm.build_identity, wm.WorldIdentityConfig),
                  "world_expression": (wm.build_expression, wm.WorldExpressionConfig),
                  "world_fd": (wm.build_fd, wm.WorldFdConfig)}


def build_metric(kind: str, dtype: str, files: dict[str, Weights], measurer: Weights, device: str) -> Metric:
    """A fresh metric of ``kind``. Only fid and fvd have a dtype; identity keeps its defaults (a
    512-d embedding of 112 px crops: ArcFace's, and the stand-in's)."""
    if kind == "fid":
        return fid.build(fid.FidConfig(weights=files[kind].path, device=device, dtype=dtype))
    if kind == "fvd":
        return fvd.build(fvd.FvdConfig(weights=files[kind].path, device=device, dtype=dtype))
    if kind == "sync":
        return sync.build(sync.SyncConfig(weights=files[kind].path, device=device))
    if kind == "identity":
        return identity.build(identity.IdentityConfig(weights=files[kind].path, device=device))
    build, config = WORLD_BUILDERS[kind]
    return build(config(measurer=Path(measurer.path), device=device))


# ---- timing -------------------------------------------------------------------------------------

def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_prepare(metric: Metric, device: str) -> float:
    # world metrics share their measurer in-process: forget it, so that each prepare() is a real load
    store.clear_memo()
    synchronise(device)
    start = time.perf_counter()
    metric.prepare()
    synchronise(device)
    return time.perf_counter() - start


KINDS = ("fid", "fvd", "sync", "identity", "world_lip_sync", "world_identity", "world_expression", "world_fd")


@dataclass
class Timing:
    update_s: float
    compute_s: float | None  # None: compute() was not run
    failed: str | None  # compute()'s error, if it raised one
    stats: tuple[GaussianStats, GaussianStats] | None  # Frechet metrics: generated and reference statistics


def timed_run(metric: Metric, pairs: list[Pair], warmup: Pair | None, device: str, compute: bool,
              min_seconds: float = 1.0) -> Timing:
    """A warm-up video if given (not counted); every pair through update(), repeated (after a
    reset) until ``min_seconds`` have passed, so that the fast metrics' figures are not timer noise;
    then compute() on the last pass's videos, if asked."""
    if warmup is not None:
        metric.reset()
        metric.update(*warmup)
    passes, update_s = 0, 0.0
    while passes == 0 or update_s < min_seconds:
        metric.reset()
        synchronise(device)
        start = time.perf_counter()
        for generated, reference in pairs:
            metric.update(generated, reference)
        synchronise(device)
        update_s += time.perf_counter() - start
        passes += 1
    update_s /= passes
    stats = (copy.deepcopy(metric.generated), copy.deepcopy(metric.reference)) \
        if isinstance(metric, FrechetMetric) else None
    if not compute:
        return Timing(update_s, None, None, stats)
    start, failed = time.perf_counter(), None
    try:
        metric.compute()
    except MemoZooError as error:
        failed = str(error)
    return Timing(update_s, time.perf_counter() - start, failed, stats)


def symmetric_frechet(a: GaussianStats, b: GaussianStats) -> float:
    """The Frechet distance with tr((S1 S2)^1/2) taken as tr((S1^1/2 S2 S1^1/2)^1/2) by symmetric
    eigendecompositions: equal to the metrics' sqrtm-based value for positive semi-definite
    covariances, and defined when fewer feature vectors than dimensions make them singular, where
    scipy's sqrtm of the product can fail (as it can in the reference FID code)."""
    w, v = np.linalg.eigh(a.cov)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root @ b.cov @ root
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    diff = a.mean - b.mean
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def work_per_video(kind: str, frames: int, metric: Metric) -> str:
    """What one update() feeds the network, for the table (generated + ground truth where measured)."""
    c = fvd.FvdConfig()
    clips = len(fvd.clip_starts(frames, c.clip_length, c.clip_stride, c.frame_step, c.max_clips_per_video))
    # the world measurer's input side (world_fd holds its measurer one level down)
    side = getattr(metric, "measuring", metric).measurer.shape.size if kind.startswith("world_") else 0
    return {"fid": f"{frames} + {frames} GT frames @299", "fvd": f"{clips} + {clips} GT clips of 16 @224",
            "sync": f"{frames - sync.WINDOW_FRAMES} windows of 5 @224", "identity": f"{frames} + 1 crops @112",
            "world_identity": f"{frames} + 1 frames @{side}", "world_fd": f"{frames} + {frames} GT frames @{side}",
            }.get(kind, f"{frames} frames @{side}")


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--videos", type=int, default=2, help="videos per size")
    parser.add_argument("--frames", type=int, default=48, help="frames per video (25 fps)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="frame sides in pixels")
    parser.add_argument("--metrics", nargs="+", default=list(KINDS), choices=KINDS, metavar="KIND",
                        help="metrics to measure (default: all)")
    parser.add_argument("--arcface-layers", type=int, default=50, choices=sorted(IResNet.DEPTHS),
                        help="depth of the identity stand-in (ArcFace r18 / r50 / r100)")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="use the real weight files found here (MEMO_ZOO_WEIGHTS_DIR) instead of random ones")
    parser.add_argument("--identity-weights", default="arcface_r100.pt",
                        help="with --weights-dir: the face network's file name there")
    parser.add_argument("--measurer", default=None, help="world measurer .safetensors (default: cached or tiny)")
    parser.add_argument("--no-precision", action="store_true", help="skip the reduced-precision comparison")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metric_throughput_") as temp:
        folder = Path(temp)
        files = weight_files(args.metrics, folder, args.weights_dir, args.identity_weights, args.arcface_layers)
        measurer = world_measurer(args.measurer, folder, args.threads) if any(
            k.startswith("world_") for k in args.metrics) else Weights("", "")
        sets = {size: video_set(args.videos, args.frames, size, args.seed) for size in args.sizes}
        device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
        print(f"torch {torch.__version__}, device {args.device} ({device_name}), {torch.get_num_threads()} CPU threads;"
              f" {args.videos} videos x {args.frames} frames at {FPS:g} fps, sides {args.sizes} px, seed {args.seed}")
        if any(not w.what.endswith("real weights") for k, w in files.items() if k in args.metrics):
            print("Networks marked 'random' have random weights in the real file formats: the figures are about "
                  "speed, not quality. 'stand-in TorchScript': the real architecture written here, not the "
                  "released file.")

        rows: list[list[str]] = []
        failures: list[str] = []
        float32_stats: dict[str, tuple[Timing, float]] = {}
        precision = [k for k in ("fid", "fvd") if k in args.metrics and not args.no_precision]
        for kind in args.metrics:
            what = files[kind].what if kind in files else measurer.what
            metric = build_metric(kind, "float32", files, measurer, args.device)
            prepare_s = timed_prepare(metric, args.device)
            for index, size in enumerate(args.sizes):
                pairs, warmup = sets[size]
                # Every network resizes to its own input side, so the first size's warm-up serves all;
                # compute() works on features alone, whose number and width do not depend on the size.
                t = timed_run(metric, pairs, warmup if index == 0 else None, args.device, compute=index == 0)
                if t.failed:
                    failures.append(f"{kind} compute(): {t.failed}")
                if index == 0 and kind in precision:
                    float32_stats[kind] = (t, symmetric_frechet(*t.stats))
                progress(f"{kind} {size} px: update {t.update_s:.1f} s" +
                         (f", compute {t.compute_s:.1f} s" if t.compute_s is not None else ""))
                compute = "" if t.compute_s is None else f"{t.compute_s:.2f}" + (" (failed)" if t.failed else "")
                first = index == 0
                rows.append([kind if first else "", what if first else "", f"{prepare_s:.2f}" if first else "",
                             str(size), work_per_video(kind, args.frames, metric), f"{t.update_s:.2f}", compute,
                             f"{len(pairs) / t.update_s:.2f}", f"{len(pairs) * args.frames / t.update_s:.1f}"])
        print()
        table(["metric", "network", "prepare s", "px", "work per video", "update s", "compute s", "videos/s",
               "frames/s"], rows)
        for failure in failures:
            print(f"- {failure}")

        if precision:
            size = args.sizes[0]
            pairs, warmup = sets[size]
            dtypes = ["bfloat16"] + (["float16"] if args.device.startswith("cuda") else [])
            rows = []
            for kind in precision:
                base_timing, base = float32_stats[kind]
                rows.append([kind, "float32", f"{base:.6g}", "", "", f"{len(pairs) / base_timing.update_s:.2f}"])
                for dtype in dtypes:
                    metric = build_metric(kind, dtype, files, measurer, args.device)
                    metric.prepare()
                    t = timed_run(metric, pairs, warmup, args.device, compute=False)
                    value = symmetric_frechet(*t.stats)
                    relative = abs(value - base) / abs(base) * 100
                    progress(f"{kind} {dtype}: update {t.update_s:.1f} s, distance {value:.6g}")
                    rows.append([kind, dtype, f"{value:.6g}", f"{relative:.3f}", "yes" if relative <= 0.1 else "no",
                                 f"{len(pairs) / t.update_s:.2f}"])
            print(f"\nReduced precision ({size} px videos, same frames; distance by symmetric_frechet, vs float32):\n")
            table(["metric", "dtype", "distance", "rel. diff %", "within 0.1%", "videos/s"], rows)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
