"""The standard metric suite (spec §8, issue 7): the math against slow independent computations, and
each metric end to end with tiny networks saved in the formats the metrics accept.

Real pretrained weights cannot be had here, so: the Frechet metrics against the eigendecomposition-based
float64 formula of tests/unit/test_frechet.py (which tests the distance itself); the offset search on
embeddings with a planted offset; SyncNet and the FID Inception-v3 run with random weights in their
real layouts (state dicts saved the way the released files are); FVD, Identity and E-FID run on
small TorchScript modules with the calling conventions of the real networks. The world metrics,
registered by talking_world, are tested in test_world_metrics.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo_eval.metrics import efid, fid, fvd, identity, sync
from memo_zoo.eval.protocol import MetricResult, VideoSample
from memo_zoo.slots.metric import Metric
from memo_zoo.perception.sync_offsets import offset_distances, search_offsets
from tests.unit.test_frechet import slow_frechet

CUDA = torch.cuda.is_available()


def video(id: str, seed: int, frames: int = 6, size: int = 24, offset: int = 0, fps: float = 25.0,
          audio: bool = False, reference_image: bool = False) -> VideoSample:
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.integers(0, 200, (frames, size, size, 3)) + offset, 0, 255).astype(np.uint8)
    sound = (rng.standard_normal(int(frames / fps * 16000)) * 0.1).astype(np.float32) if audio else None
    image = pixels[0].copy() if reference_image else None
    return VideoSample(id=id, frames=pixels, fps=fps, audio=sound, reference_image=image)


def script(module: nn.Module, path) -> str:
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    return str(path)


# ---- offset search (memo_zoo.perception.sync_offsets) --------------------------------------------------

def planted(shift: int, frames: int = 60, dim: int = 16, seed: int = 0):
    """Video embeddings v and audio embeddings a with a_(i + shift) = v_i (+ a little noise)."""
    rng = np.random.default_rng(seed)
    video = rng.standard_normal((frames, dim))
    audio = rng.standard_normal((frames, dim))
    for i in range(frames):
        if 0 <= i + shift < frames:
            audio[i + shift] = video[i] + 0.05 * rng.standard_normal(dim)
    return video, audio


@settings(max_examples=25)
@given(shift=st.integers(-15, 15), frames=st.integers(40, 80), seed=st.integers(0, 1000))
def test_offset_search_finds_a_planted_offset(shift, frames, seed):
    video, audio = planted(shift, frames, seed=seed)
    result = search_offsets(video, audio, max_offset=15)
    assert result.best_shift == shift and result.av_offset == -shift
    assert result.mean_distances.shape == (31,) and result.frame_distances.shape == (frames, 31)
    # the planted shift stands far out: most of its frames match, every other shift compares noise
    assert result.confidence > 0.5 * float(np.median(result.mean_distances))


def test_offset_search_confidence_is_low_for_shuffled_audio():
    video, audio = planted(4)
    synced = search_offsets(video, audio)
    shuffled = search_offsets(video, audio[np.random.default_rng(1).permutation(len(audio))])
    assert shuffled.confidence < 0.15 * synced.confidence


def test_offset_distances_match_the_reference_padding_and_eps():
    """A slow per-frame loop as SyncNet's reference writes it: zero-padded audio, pairwise_distance."""
    rng = np.random.default_rng(2)
    video, audio = torch.from_numpy(rng.standard_normal((12, 5))), torch.from_numpy(rng.standard_normal((12, 5)))
    k = 4
    padded = F.pad(audio, (0, 0, k, k))
    slow = torch.stack([F.pairwise_distance(video[[i]].repeat(2 * k + 1, 1), padded[i:i + 2 * k + 1])
                        for i in range(len(video))])
    torch.testing.assert_close(offset_distances(video, audio, k), slow, rtol=1e-12, atol=1e-12)


# ---- FID -----------------------------------------------------------------------------------------

class FakeInception(nn.Module):
    """The TorchScript calling convention of NVIDIA's inception-2015-12-05.pt, 8 features."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        torch._assert(x.dtype == torch.uint8, "expects uint8 images")
        torch._assert(return_features, "features only")
        return torch.tanh(self.conv((x.float() - 128) / 128)).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def fake_inception(tmp_path_factory):
    torch.manual_seed(0)
    module = FakeInception()
    return script(module, tmp_path_factory.mktemp("fid") / "inception.pt"), module


def test_fid_end_to_end_with_a_torchscript_network(fake_inception, tmp_path):
    path, module = fake_inception
    metric = fid.build(fid.FidConfig(weights=path, batch_size=4, device="cpu", per_video_distance=True))
    assert isinstance(metric, Metric)
    pairs = [(video(f"v{i}", i, offset=40), video(f"v{i}", 100 + i)) for i in range(3)]
    for generated, reference in pairs:
        metric.update(generated, reference)
    result = metric.compute()

    def feats(samples):
        with torch.no_grad():
            return np.concatenate([module(torch.from_numpy(s.frames).permute(0, 3, 1, 2).contiguous(),
                                          return_features=True).double().numpy() for s in samples])

    gen, ref = feats([g for g, _ in pairs]), feats([r for _, r in pairs])
    expected = slow_frechet(gen.mean(0), np.cov(gen, rowvar=False), ref.mean(0), np.cov(ref, rowvar=False))
    assert isinstance(result, MetricResult)
    assert result.summary["fid"] == pytest.approx(expected, rel=1e-6)
    assert result.summary["frames"] == 18 and result.summary["reference_frames"] == 18
    assert set(result.per_video) == {"v0", "v1", "v2"}
    assert result.per_video["v0"]["frames"] == 6 and np.isfinite(result.per_video["v0"]["fid"])

    # the reference measured once and saved serves as reference_stats for the next run
    stats_path = metric.save_reference_stats(tmp_path / "ref.npz")
    again = fid.build(fid.FidConfig(weights=path, device="cpu", reference_stats=str(stats_path)))
    for generated, _ in pairs:
        again.update(generated)
    assert again.compute().summary["fid"] == pytest.approx(expected, rel=1e-6)

    metric.reset()
    with pytest.raises(MemoZooError, match="at least 2"):
        metric.compute()
    same = [video(f"s{i}", i) for i in range(3)]
    for sample in same:
        metric.update(sample, sample)
    assert abs(metric.compute().summary["fid"]) < 1e-6  # same frames, same distribution


def test_fid_needs_a_reference_and_rejects_a_video_twice(fake_inception):
    metric = fid.build(fid.FidConfig(weights=fake_inception[0], device="cpu"))
    metric.update(video("a", 0))
    with pytest.raises(ValueError, match="already measured"):
        metric.update(video("a", 1))
    with pytest.raises(MemoZooError, match="no reference distribution"):
        metric.compute()


def test_fid_rejects_a_state_dict_of_another_network(tmp_path):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(MemoZooError, match="fc.weight"):
        fid.build(fid.FidConfig(weights=str(tmp_path / "other.pth"), device="cpu")).prepare()
    torch.save({"fc.weight": torch.zeros(10, 2048)}, tmp_path / "fc10.pth")
    with pytest.raises(MemoZooError, match="10-way"):
        fid.build(fid.FidConfig(weights=str(tmp_path / "fc10.pth"), device="cpu")).prepare()


@pytest.mark.slow
def test_fid_runs_the_real_inception_layouts(tmp_path):
    """Random weights in the FID network's layout (1008-way fc, via torchmetrics) and torchvision's (1000)."""
    from torchvision.models import inception_v3

    frames = video("x", 0, frames=1, size=80)
    for classes in (1008, 1000):
        torch.manual_seed(0)
        net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=classes)
        torch.save(net.state_dict(), tmp_path / f"inception{classes}.pth")
        metric = fid.build(fid.FidConfig(weights=str(tmp_path / f"inception{classes}.pth"), device="cpu"))
        metric.prepare()
        features = metric.features(frames)
        assert features.shape == (1, 2048) and np.isfinite(features).all()


@pytest.mark.slow
@pytest.mark.parametrize("resize", ["tensorflow", "antialias"])
def test_fid_network_in_bfloat16_on_cpu_is_close_to_float32(resize, tmp_path):
    """``dtype: bfloat16`` with the FID state dict: the resize to 299 stays float32 and the layers run
    in bfloat16 (a bfloat16 resize crashed: the TensorFlow-style one returned float32 into bfloat16
    weights, the antialiased one has no bfloat16 CPU kernel). Random weights: the pool features
    differed from float32 by 0.97 % (relative L2, both resizes); 3 % allowed."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    torch.save(net.state_dict(), tmp_path / "inception.pth")
    sample = video("x", 0, frames=4, size=80)
    features = {}
    for dtype in ("float32", "bfloat16"):
        metric = fid.build(fid.FidConfig(weights=str(tmp_path / "inception.pth"), device="cpu", dtype=dtype,
                                         resize=resize))
        metric.prepare()
        features[dtype] = metric.features(sample)
    assert features["bfloat16"].shape == (4, 2048) and np.isfinite(features["bfloat16"]).all()
    error = np.linalg.norm(features["bfloat16"] - features["float32"]) / np.linalg.norm(features["float32"])
    assert 0 < error < 0.03


# ---- FVD -----------------------------------------------------------------------------------------

class FakeI3D(nn.Module):
    """i3d_torchscript.pt's calling convention; resizes to 32 px (not 224) to stay fast."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        torch._assert(return_features, "features only")
        if rescale:
            x = x / 127.5 - 1.0
        n, c, t, h, w = x.shape
        if resize:
            flat = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
            flat = F.interpolate(flat, size=[32, 32], mode="bilinear", align_corners=False, antialias=True)
            x = flat.reshape(n, t, c, 32, 32).permute(0, 2, 1, 3, 4)
        torch._assert(x.shape[-1] == 32, "the network sees 32 px")
        torch._assert(x.min() >= -1.0001, "the network sees [-1, 1]")
        torch._assert(x.max() <= 1.0001, "the network sees [-1, 1]")
        motion = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(2, 3, 4))
        return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4)), motion], dim=1)


def test_fvd_clips_and_both_input_conventions(tmp_path):
    path = script(FakeI3D(), tmp_path / "i3d.pt")
    assert fvd.clip_starts(40, 16, 16, 1, None) == [0, 16]
    assert fvd.clip_starts(40, 8, 4, 2, None) == [0, 4, 8, 12, 16, 20, 24]
    assert fvd.clip_starts(100, 4, 1, 1, 3) == [0, 48, 96]
    assert fvd.clip_starts(10, 16, 16, 1, None) == []

    results = {}
    for in_network in (True, False):
        metric = fvd.build(fvd.FvdConfig(weights=path, clip_length=4, clip_stride=4, size=32, device="cpu",
                                         resize_in_network=in_network, batch_size=2))
        for i in range(3):
            metric.update(video(f"v{i}", i, frames=12, size=48, offset=30), video(f"v{i}", 10 + i, frames=12, size=48))
        metric.update(video("short", 7, frames=3, size=48))  # shorter than a clip: no clips, no error
        results[in_network] = metric.compute()
    a, b = results[True], results[False]
    assert a.summary["clips"] == 9 and a.per_video["short"]["clips"] == 0
    # network-side rescale + resize and memo-zoo-side resize + rescale give the network the same input
    assert a.summary["fvd"] == pytest.approx(b.summary["fvd"], rel=1e-4)
    assert a.summary["fvd"] > 0


def test_fvd_in_bfloat16_on_cpu_is_close_to_float32(tmp_path):
    """``dtype: bfloat16``: network and clips in bfloat16, features accumulated in float64. On these
    videos FVD moved by 0.005-0.05 % from float32 (3 seeds); 0.5 % allowed. (The stand-in's own
    antialiased resize has no bfloat16 CPU kernel, so memo-zoo resizes here, in float32.)"""
    path = script(FakeI3D(), tmp_path / "i3d.pt")
    values = {}
    for dtype in ("float32", "bfloat16"):
        metric = fvd.build(fvd.FvdConfig(weights=path, clip_length=4, clip_stride=4, size=32, device="cpu",
                                         resize_in_network=False, dtype=dtype))
        for i in range(3):
            metric.update(video(f"v{i}", i, frames=12, size=48, offset=30), video(f"v{i}", 100 + i, frames=12, size=48))
        values[dtype] = metric.compute().summary["fvd"]
    assert np.isfinite(values["bfloat16"]) and values["float32"] > 0
    assert values["bfloat16"] == pytest.approx(values["float32"], rel=5e-3)


# ---- Sync ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def syncnet_file(tmp_path_factory):
    """Random SyncNet weights saved as syncnet_v2.model is: a state dict, here without num_batches_tracked."""
    torch.manual_seed(0)
    state = {k: v for k, v in sync.SyncNet().state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("sync") / "syncnet_v2.model"
    torch.save(state, path)
    return path


def test_syncnet_layout_gives_one_embedding_per_window():
    net = sync.SyncNet().eval()
    with torch.no_grad():
        assert net.forward_aud(torch.zeros(2, 1, 13, 20)).shape == (2, 1024)
        assert net.forward_lip(torch.zeros(1, 3, 5, 224, 224)).shape == (1, 1024)


def test_mfcc_matches_python_speech_features():
    """Values printed by python_speech_features 0.6 (PyPI)'s mfcc(signal, 16000) for this int16 signal."""
    t = np.arange(1600) / 16000
    signal = (10000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 2500 * t)).astype(np.int16)
    out = sync.mfcc(signal.astype(np.float64))
    assert out.shape == (9, 13)
    np.testing.assert_allclose(out[3], [20.8009910217, 11.9206098944, -14.3713877753, 24.635995536,
                                        -14.9309606257, -61.7356374252, -9.982710026, 4.8188742399,
                                        -29.2946573365, 13.3101486301, 45.1084075316, 2.4689981226,
                                        1.5730920678], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(out[-1, :3], [20.5670650229, 7.0947642132, -12.8773683478], rtol=1e-8)


def test_resample_frames_to_25_fps():
    frames = np.arange(30)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3).astype(np.uint8)
    out = sync.resample_frames(frames, 30.0, 25.0)
    assert len(out) == 25 and out[0, 0, 0, 0] == 0 and out[5, 0, 0, 0] == 6 and out[-1, 0, 0, 0] == 28
    assert sync.resample_frames(frames, 25.0, 25.0) is frames


def test_sync_end_to_end_and_the_lip_sync_filter_hook(syncnet_file, monkeypatch):
    metric = sync.build(sync.SyncConfig(weights=str(syncnet_file), device="cpu"))
    sample = video("talk", 0, frames=8, size=32, audio=True)
    metric.update(sample)
    result = metric.compute()
    figures = result.per_video["talk"]
    assert set(figures) == {"sync_c", "sync_d", "av_offset"}
    assert figures["sync_c"] >= 0 and figures["sync_d"] > 0 and abs(figures["av_offset"]) <= 15
    assert result.summary["sync_d"] == pytest.approx(figures["sync_d"])
    video_emb, audio_emb = metric.evaluator.embeddings(sample.frames, sample.audio, sample.fps)
    assert video_emb.shape == audio_emb.shape == (3, 1024)  # min(8 frames, 8 x 640 samples) - 5 windows
    with pytest.raises(MemoZooError, match="no audio"):
        metric.update(video("mute", 1, frames=8))
    with pytest.raises(MemoZooError, match="at least 6"):
        metric.update(video("tiny", 2, frames=5, audio=True))

    # the lip_sync_filter's syncnet scorer is this metric's SyncNet
    from memo_zoo_plugins.preprocess import lip_sync

    monkeypatch.setenv("MEMO_ZOO_DEVICE", "cpu")
    scorer = lip_sync.load_syncnet(str(syncnet_file))
    assert scorer(sample.frames, sample.audio, sample.fps) == pytest.approx(figures["sync_c"], rel=1e-6)


def test_syncnet_rejects_other_state_dicts(tmp_path):
    torch.save({"netfcaud.3.weight": torch.zeros(1024, 512)}, tmp_path / "partial.model")
    with pytest.raises(MemoZooError, match="does not match"):
        sync.load_syncnet(tmp_path / "partial.model")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.model")
    with pytest.raises(MemoZooError, match="netfcaud.3.weight"):
        sync.load_syncnet(tmp_path / "other.model")


# ---- Identity ------------------------------------------------------------------------------------

class PooledEmbedding(nn.Module):
    """An 'embedding' that is the 2x2 average-pooled [-1, 1] crop, 12-d (times a unit weight: the
    face_embedding loader reads the network's dtype from its parameters)."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._assert(x.shape[-1] == 16, "16 px crops")
        torch._assert(x.min() >= -1.0, "[-1, 1] input")
        return F.adaptive_avg_pool2d(x, 2).flatten(1) * self.gain


def test_identity_mean_drift_and_time_bins(tmp_path):
    path = script(PooledEmbedding(), tmp_path / "arcface.pt")
    config = identity.IdentityConfig(weights=path, embed_dim=12, input_size=16, device="cpu", time_bins=4)
    metric = identity.build(config)
    rng = np.random.default_rng(0)
    start, end = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.float64)
    weights = np.linspace(0, 1, 20)[:, None, None, None]
    drifting = ((1 - weights) * start + weights * end).round().astype(np.uint8)  # morphs into another face
    metric.update(VideoSample("drift", drifting, 25.0, reference_image=start.astype(np.uint8)))
    steady = np.repeat(start.astype(np.uint8)[None], 10, axis=0)
    metric.update(VideoSample("steady", steady, 25.0), reference=VideoSample("steady", steady[:1], 25.0))
    result = metric.compute()
    d, s = result.per_video["drift"], result.per_video["steady"]
    assert s["identity"] == pytest.approx(1.0) and s["identity_drift"] == pytest.approx(0.0, abs=1e-9)
    assert d["identity_first"] == pytest.approx(1.0, abs=0.01)  # first 10%: 2 frames, nearly the reference
    assert d["identity_drift"] > 0.3 and d["identity_last"] < d["identity"] < d["identity_first"]
    bins = [d[f"identity_bin{b}"] for b in range(4)]
    assert bins == sorted(bins, reverse=True) and "identity_bin4" not in d
    assert result.summary["identity"] == pytest.approx((d["identity"] + s["identity"]) / 2)
    with pytest.raises(MemoZooError, match="no reference image"):
        metric.update(VideoSample("alone", steady, 25.0))


# ---- E-FID ---------------------------------------------------------------------------------------

def mean_colour_extractor(config):
    """An ExpressionExtractor factory for ``extractor: tests.plugins.test_metrics:mean_colour_extractor``:
    per-frame mean colour and brightness of the face crop (4 'coefficients')."""

    def extract(faces: np.ndarray) -> np.ndarray:
        colour = faces.reshape(len(faces), -1, 3).mean(axis=1) / 255.0
        return np.concatenate([colour, colour.mean(axis=1, keepdims=True) ** 2], axis=1)

    return extract


class ExpressionNet(nn.Module):
    """A TorchScript 'expression regressor' returning (coefficients, something else), input in [0, 1]."""

    def forward(self, x: torch.Tensor):
        torch._assert(x.min() >= 0.0, "[0, 1] input")
        torch._assert(x.max() <= 1.0, "[0, 1] input")
        torch._assert(x.shape[-1] == 8, "8 px crops")
        return F.adaptive_avg_pool2d(x, 1).flatten(1), x.sum()


def test_efid_with_a_python_extractor_and_a_torchscript_network(tmp_path):
    generated = [video(f"v{i}", i, offset=50) for i in range(3)]
    references = [video(f"v{i}", 20 + i) for i in range(3)]
    config = efid.EFidConfig(extractor="tests.plugins.test_metrics:mean_colour_extractor", coefficients=(0, 3),
                             per_video_distance=True)
    metric = efid.build(config)
    for g, r in zip(generated, references):
        metric.update(g, r)
    result = metric.compute()
    extract = mean_colour_extractor(None)
    gen = np.concatenate([extract(g.frames) for g in generated])[:, :3]
    ref = np.concatenate([extract(r.frames) for r in references])[:, :3]
    expected = slow_frechet(gen.mean(0), np.cov(gen, rowvar=False), ref.mean(0), np.cov(ref, rowvar=False))
    assert result.summary["efid"] == pytest.approx(expected, rel=1e-6) and expected > 0
    assert set(result.per_video["v0"]) == {"frames", "reference_frames", "efid"}

    path = script(ExpressionNet(), tmp_path / "expression.pt")
    scripted = efid.build(efid.EFidConfig(extractor=path, input_size=8, device="cpu"))
    for g, r in zip(generated, references):
        scripted.update(g, r)
    # mean colour of an 8 px resize is the mean colour of the frame, up to the resize's rounding
    assert scripted.compute().summary["efid"] == pytest.approx(expected, rel=0.05)


def test_efid_rejects_bad_extractor_output():
    metric = efid.EFidMetric(efid.EFidConfig(extractor="unused:factory"), extractor=lambda faces: np.zeros(3))
    with pytest.raises(MemoZooError, match="expected \\(frames, D\\)"):
        metric.update(video("v", 0))
    with pytest.raises(MemoZooError, match="cannot be imported"):
        efid.build(efid.EFidConfig(extractor="no_such_module_here:make")).prepare()


# ---- registry, weights, devices ------------------------------------------------------------------

def test_plugin_registers_the_suite_with_documented_options():
    from memo_zoo_eval.plugin import metric_components

    specs = {spec.name: spec for spec in metric_components()}
    assert set(specs) == {"fid", "fvd", "sync", "identity", "efid", "background"}  # world_*: talking_world's
    for spec in specs.values():
        assert spec.summary and "kind" not in spec.config.model_fields
        assert all(field.description for field in spec.config.model_fields.values())
        if not any(field.is_required() for field in spec.config.model_fields.values()):
            spec.factory(spec.config())  # building loads nothing: works without any weights


@pytest.mark.parametrize("kind, options, file", [
    ("fid", {}, "pt_inception-2015-12-05-6726825d.pth"),
    ("fvd", {}, "i3d_torchscript.pt"),
    ("sync", {}, "syncnet_v2.model"),
    ("identity", {"weights": "arcface_r100.pt"}, "arcface_r100.pt"),
    ("efid", {"extractor": "deep3d_expression.pt"}, "deep3d_expression.pt"),
    ("fid", {"weights": "/nonexistent/inception.pth"}, "/nonexistent/inception.pth"),
])
def test_missing_weights_name_the_file_and_where_to_put_it(kind, options, file, tmp_path, monkeypatch):
    from memo_zoo_eval.plugin import metric_components

    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(tmp_path))
    spec = next(s for s in metric_components() if s.name == kind)
    metric = spec.factory(spec.config(**options))
    with pytest.raises(MissingWeightsError, match="does not download") as error:
        metric.prepare()
    assert file in str(error.value)
    with pytest.raises(MissingWeightsError):  # update loads lazily, so it says the same
        metric.update(video("v", 0, audio=True, reference_image=True))


def test_video_sample_checks_its_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        VideoSample("x", np.zeros((2, 4, 4, 3), np.float32), 25.0)
    with pytest.raises(ValueError, match="mono"):
        VideoSample("x", np.zeros((2, 4, 4, 3), np.uint8), 25.0, audio=np.zeros((2, 10)))
    from memo_zoo.data.media import write_video

    sample = video("file", 0, frames=5, size=32, audio=True)
    path = write_video(tmp_path / "clip.mp4", sample.frames, 25.0, audio=sample.audio)
    loaded = VideoSample.from_file(path)
    assert loaded.id == "clip" and loaded.frames.shape == (5, 32, 32, 3) and loaded.audio is not None


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_fid_features_on_gpu_match_cpu(fake_inception):
    sample = video("g", 0, frames=4)
    values = {}
    for device in ("cpu", "cuda"):
        metric = fid.build(fid.FidConfig(weights=fake_inception[0], device=device))
        metric.prepare()
        values[device] = metric.features(sample)
    np.testing.assert_allclose(values["cuda"], values["cpu"], rtol=1e-4, atol=1e-5)
