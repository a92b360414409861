"""``metrics: [{kind: fid}]``: Frechet Inception Distance of generated frames (spec §8, Table 1 "FID").

Every ``frame_stride``-th frame of every generated video is one sample; its feature is the
2048-d pool3 output (after the last average pool) of Inception-v3; the reference distribution is
the same features of the ground-truth videos (or a precomputed ``reference_stats`` .npz with
``mu``, ``sigma``), and FID is the Frechet distance of the two Gaussians (``memo_zoo.eval.frechet``).

Weights, from a local file (``weights``: a path, or a name under MEMO_ZOO_WEIGHTS_DIR; never
downloaded). The format is recognised from the file:

1. The standard FID network as a PyTorch state dict: the TensorFlow "inception-2015-12-05" graph of
   the original FID code, converted, with a 1008-way ``fc`` - pytorch-fid's
   ``pt_inception-2015-12-05-6726825d.pth`` or torch-fidelity's
   ``weights-inception-2015-12-05-6726825d.pth`` (same layout: torchvision's Inception3 module
   names). Run by torchmetrics' ``NoTrainInceptionV3`` (torch-fidelity's port of that graph, with
   TensorFlow's padding and pooling quirks), given the local path so that nothing is downloaded.
   Input: uint8 RGB, resized to 299x299 inside the network - ``resize: tensorflow`` (default)
   emulates TensorFlow 1's bilinear resize as the original FID code did; ``resize: antialias``
   is torchmetrics' default (bilinear with antialiasing) - then (x - 128) / 128.
2. A torchvision ``inception_v3`` state dict (1000-way ``fc``, e.g. ``inception_v3_google-*.pth``;
   ``AuxLogits.*`` keys are ignored). Not the FID network: its numbers are not comparable with
   published FIDs, but it is the same architecture. Input: RGB / 255, resized to 299x299
   (bilinear, antialias), then (x - 0.5) / 0.5, which is what torchvision's ``transform_input``
   makes of ImageNet-normalised input for these weights.
3. A TorchScript file (a zip archive holding ``constants.pkl``), called as
   ``net(x, return_features=True) -> (N, 2048)`` on uint8 (N, 3, H, W) RGB in [0, 255], resizing
   and normalising inside: the calling convention of NVIDIA's ``inception-2015-12-05.pt`` (the
   StyleGAN2-ADA / StyleGAN3 metrics). Not verified against that file here (it cannot be
   downloaded on this machine); any TorchScript module with that signature works.

``dtype`` (float16 / bfloat16, for GPUs) applies to formats 1 and 2, to the network's layers: the
resize to 299 is done in float32. A TorchScript network runs in the dtype it was saved in.
Features are returned in float32 and accumulated in float64. With random weights, bfloat16 on CPU
moved the pool features by about 1 % and FID by about 1 % (``benchmarks/metric_throughput.py``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from memo_zoo.errors import MemoZooError
from memo_zoo.weights import resolve_weights
from memo_zoo.eval.frechet import FrechetMetric
from memo_zoo.eval.protocol import DTYPES, VideoSample, resolve_device
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_eval.metrics.configs import FidConfig

WHAT = "FID Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth, a torchvision inception_v3 state dict, " \
       "or a TorchScript inception-2015-12-05.pt)"


FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def is_torchscript(path: Path) -> bool:
    """TorchScript archives hold ``constants.pkl``; torch.save state dicts (zip or legacy) do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in archive.namelist())


def load_inception(path: Path, resize: str, device: torch.device, dtype: torch.dtype) -> FeatureFn:
    """uint8 (N, 3, H, W) RGB on ``device`` -> (N, 2048) float32 pool features (module docstring)."""
    if is_torchscript(path):
        net = torch.jit.load(str(path), map_location=device).eval()
        return lambda x: net(x, return_features=True).float()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - corrupt files fail in format-specific ways (zip, pickle)
        raise MemoZooError(f"FID network: {path} is neither a TorchScript file nor a state dict ({error})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if fc is None:
        raise MemoZooError(f"FID network: {path} is a {type(state).__name__} without 'fc.weight'; expected an "
                           "Inception-v3 state dict (module names of torchvision's Inception3)")
    if fc.shape[0] == 1008:
        return _fid_inception(path, resize, device, dtype)
    if fc.shape[0] == 1000:
        return _torchvision_inception(state, device, dtype)
    raise MemoZooError(f"FID network: {path} has a {fc.shape[0]}-way fc; expected 1008 (the FID network) or "
                       "1000 (torchvision's inception_v3)")


def _fid_inception(path: Path, resize: str, device: torch.device, dtype: torch.dtype) -> FeatureFn:
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:
        raise MemoZooError("fid: the FID network is run by torchmetrics + torch-fidelity; pip install "
                           "torchmetrics torch-fidelity") from None
    # torch-fidelity loads the given file itself (strictly); the download happens only for a None path
    try:
        net = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path),
                                 antialias=resize == "antialias")
    except (RuntimeError, KeyError) as error:
        # torch-fidelity's strict load_state_dict: a 1008-way fc over other missing or mis-shaped tensors
        raise MemoZooError(f"FID network: {path} has the FID network's 1008-way fc but not its other tensors "
                           f"({str(error)[:500]})") from None
    net = net.to(device=device, dtype=dtype)
    # The resize to 299 stays float32 (NoTrainInceptionV3's forward casts its uint8 input to
    # ``_dtype``); only the layers run in ``dtype``, from the first convolution on. In bfloat16 the
    # TensorFlow-style resize returned float32 (its sampling weights are float32) into bfloat16
    # weights, the antialiased one has no bfloat16 CPU kernel, and bfloat16 cannot even hold the
    # sampling coordinates above 256 exactly.
    net._dtype = torch.float32
    if dtype != torch.float32:
        net.Conv2d_1a_3x3.register_forward_pre_hook(lambda module, inputs: (inputs[0].to(dtype),))

    def features(x: torch.Tensor) -> torch.Tensor:
        return net(x).float()

    return features


def _torchvision_inception(state: dict, device: torch.device, dtype: torch.dtype) -> FeatureFn:
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("AuxLogits.")})
    net.fc = torch.nn.Identity()  # the pool3 features, after avgpool + (eval-mode) dropout + flatten
    net = net.eval().to(device=device, dtype=dtype)

    def features(x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float() / 255.0, size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        return net(((x - 0.5) / 0.5).to(dtype)).float()

    return features


class FidMetric(FrechetMetric):
    name = "fid"
    unit = "frames"
    stats_what = "reference statistics (.npz with mu, sigma of the 2048-d Inception pool features)"

    def __init__(self, config: FidConfig):
        self.config = config
        self._net: FeatureFn | None = None
        self.device = torch.device("cpu")
        super().__init__(config.reference_stats, config.per_video_distance)

    def _load(self) -> None:
        path = resolve_weights(self.config.weights, WHAT)
        if path.is_dir():
            raise MemoZooError(f"fid: {path} is a folder; give the Inception-v3 file")
        self.device = resolve_device(self.config.device)
        self._net = load_inception(path, self.config.resize, self.device, DTYPES[self.config.dtype])

    @torch.no_grad()
    def features(self, sample: VideoSample) -> np.ndarray:
        frames = sample.frames[::self.config.frame_stride]
        out = []
        for start in range(0, len(frames), self.config.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(frames[start:start + self.config.batch_size]))
            batch = batch.to(self.device).permute(0, 3, 1, 2).contiguous()
            out.append(self._net(batch).cpu())
        return torch.cat(out).double().numpy()


def build(config: FidConfig) -> FidMetric:
    return FidMetric(config)
