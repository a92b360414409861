"""The world metrics (spec §8 on talking_world, labels of spec E4): no pretrained weights.

Each metric's math is checked against a slow reference with a FAKE measurer that reads planted
values off the pixels (a planted lag, a constructed identity-similarity sequence, planted expression
labels, known features for the Frechet distance). The real measurer is trained on a tiny world (4
identities, 2 held out, 2 clips of 1-1.5 s, 32 px) with tiny options: the pipeline, its report, its
determinism, and the store's caching and errors. Quality on the default world is not a unit test
(about a minute of training): benchmarks/world_measurer.py, numbers in docs/evaluation.md.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.eval.frechet import frechet_distance
from memo_zoo.eval.protocol import MetricResult, VideoSample
from memo_zoo.slots.metric import Metric
from memo_zoo_plugins.datasets.talking_world.api import WorldConfig
from memo_zoo_plugins.datasets.talking_world.measure import metrics as wm
from memo_zoo_plugins.datasets.talking_world.measure import store, training
from memo_zoo_plugins.datasets.talking_world.measure.measurer import Measurements, MeasurerShape, WorldMeasurer
from memo_zoo_plugins.datasets.talking_world.measure.stats import best_lag, lagged_correlations, pearson, roc_auc

TINY_WORLD = dict(identities=4, test_identities=2, clips_per_identity=2, seconds=(1.0, 1.5), long_clips=0, size=32,
                  workers=1)
TINY_TRAINING = dict(width=4, embed_dim=8, epochs=1, frame_stride=2, balanced_frames=8, batch_size=16,
                     identity_check_frames=24, threads=1)
BUILDERS = {"world_lip_sync": (wm.build_lip_sync, wm.WorldLipSyncConfig),
            "world_identity": (wm.build_identity, wm.WorldIdentityConfig),
            "world_expression": (wm.build_expression, wm.WorldExpressionConfig),
            "world_fd": (wm.build_fd, wm.WorldFdConfig)}


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> WorldConfig:
    # generated once for the module; the measurer cache of each test is its own (MEMO_ZOO_CACHE_DIR)
    world = WorldConfig(root=tmp_path_factory.mktemp("tw") / "world", **TINY_WORLD)
    from memo_zoo_plugins.datasets.talking_world.world import generate
    generate(world, progress=False)
    return world


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    store.clear_memo()
    yield tmp_path / "cache"
    store.clear_memo()


def source(world: WorldConfig, **extra) -> store.MeasurerSource:
    return store.MeasurerSource(world=world, training=training.MeasurerTraining(**TINY_TRAINING), **extra)


# ---- a fake measurer: readings planted in the pixels -----------------------------------------------

class FakeMeasurer:
    """Reads planted values off pixel (0, 0): red = mouth_open * 255, green = mouth_area * 255,
    blue = identity cosine * 255 (embedding (s, sqrt(1 - s^2))); pixel (0, 1) red = expression label;
    features = the first 3 values of pixel row 1, as floats."""

    def __init__(self):
        self.calls = 0

    def measure(self, frames: np.ndarray, batch_size: int = 256) -> Measurements:
        self.calls += 1
        f = frames.astype(np.float64)
        s = f[:, 0, 0, 2] / 255
        logits = np.eye(len(PAPER_LABELS))[frames[:, 0, 1, 0] % len(PAPER_LABELS)]
        return Measurements(mouth_area=f[:, 0, 0, 1] / 255, mouth_open=f[:, 0, 0, 0] / 255,
                            identity=np.stack([s, np.sqrt(np.clip(1 - s * s, 0, None))], 1), expression=logits,
                            features=f[:, 1, :3, 0])


def planted(id: str, mouth=None, similarity=None, labels=None, features=None, fps: float = 25.0, truth=None,
            frames: int | None = None, reference_image: bool = True) -> VideoSample:
    count = frames or len(next(x for x in (mouth, similarity, labels, features) if x is not None))
    pixels = np.zeros((count, 4, 4, 3), np.uint8)
    if mouth is not None:
        pixels[:, 0, 0, 0] = np.round(np.asarray(mouth) * 255)
    if similarity is not None:
        pixels[:, 0, 0, 2] = np.round(np.asarray(similarity) * 255)
    if labels is not None:
        pixels[:, 0, 1, 0] = labels
    if features is not None:
        pixels[:, 1, :3, 0] = features
    image = None
    if reference_image:
        image = np.zeros((4, 4, 3), np.uint8)
        image[0, 0, 2] = 255  # the anchor embedding (1, 0)
    return VideoSample(id=id, frames=pixels, fps=fps, reference_image=image, truth=truth)


def smooth_series(rng: np.random.Generator, n: int) -> np.ndarray:
    """A mouth-like curve in [0, 1]: smoothed noise."""
    x = np.convolve(rng.standard_normal(n + 6), np.ones(4) / 4, mode="valid")[:n]
    return (x - x.min()) / (np.ptp(x) + 1e-9)


# ---- statistics (memo_zoo_plugins.datasets.talking_world.measure.stats) -------------------------------

def slow_lagged(truth, measured, max_lag, min_overlap=3):
    """Explicit pairs (truth[t], measured[t + lag]) and np.corrcoef."""
    n = min(len(truth), len(measured))
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        pairs = [(truth[t], measured[t + lag]) for t in range(n) if 0 <= t + lag < n]
        if len(pairs) < min_overlap:
            out[lag] = float("nan")
            continue
        a, b = np.array(pairs).T
        out[lag] = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return out


@settings(max_examples=40)
@given(n=st.integers(4, 70), extra=st.integers(0, 5), max_lag=st.integers(0, 8), seed=st.integers(0, 2**16))
def test_lagged_correlations_match_explicit_pairs(n, extra, max_lag, seed):
    rng = np.random.default_rng(seed)
    truth, measured = rng.standard_normal(n), rng.standard_normal(n + extra)  # lengths differ: cut to the shorter
    fast, slow = lagged_correlations(truth, measured, max_lag), slow_lagged(truth, measured, max_lag)
    assert list(fast) == list(range(-max_lag, max_lag + 1))
    for lag in fast:
        assert np.isnan(fast[lag]) == np.isnan(slow[lag])
        if not np.isnan(slow[lag]):
            assert fast[lag] == pytest.approx(slow[lag], abs=1e-9)


@settings(max_examples=40)
@given(n=st.integers(30, 120), shift=st.integers(-5, 5), seed=st.integers(0, 2**16))
def test_a_planted_lag_is_recovered_with_its_sign(n, shift, seed):
    # measured[t + shift] = truth[t]: the video shows the mouth `shift` frames late (positive = lags the audio)
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(n + 20)
    truth, measured = base[10:10 + n], base[10 - shift:10 - shift + n]
    figures = wm.lip_sync_figures(measured, truth, max_lag=5)
    assert figures["lip_sync_lag"] == shift
    assert figures["lip_sync_best_r"] == pytest.approx(1.0)
    assert figures["lip_sync_frames"] == n
    if shift:
        assert figures["lip_sync_r"] < 0.99


def test_lag_ties_go_to_the_smaller_lag_and_constant_series_are_nan():
    assert best_lag({-2: 0.5, -1: 0.9, 0: 0.2, 1: 0.9, 2: 0.1}) == (-1, 0.9)
    assert best_lag({-1: float("nan"), 0: float("nan"), 1: float("nan")})[0] == 0
    assert np.isnan(pearson(np.ones(10), np.arange(10.0)))
    assert np.isnan(wm.lip_sync_figures(np.arange(10.0), np.zeros(10), 3)["lip_sync_best_r"])


def test_roc_auc_is_the_pair_ranking_probability():
    rng = np.random.default_rng(0)
    scores, positive = rng.standard_normal(60).round(1), rng.random(60) < 0.4  # rounding makes ties
    pos, neg = scores[positive], scores[~positive]
    slow = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert roc_auc(scores, positive) == pytest.approx(slow)
    assert np.isnan(roc_auc(scores, np.zeros(60, bool)))


# ---- each metric against a slow reference, with the fake measurer ------------------------------------

def test_world_lip_sync_recovers_a_planted_video_lag():
    rng = np.random.default_rng(3)
    truth = smooth_series(rng, 140)
    late = np.concatenate([np.full(3, truth[0]), truth[:-3]])  # the generated mouth is 3 frames late
    metric = wm.build_lip_sync(wm.WorldLipSyncConfig(), measurer=FakeMeasurer())
    assert isinstance(metric, Metric)
    # the generated video is 2 frames longer than its truth: both are cut to the truth's length
    video = planted("late", mouth=np.concatenate([late, [0.5, 0.5]]), truth={"mouth_open": truth})
    metric.update(video)
    result = metric.compute()
    figures = result.per_video["late"]
    measured = np.round(late * 255) / 255
    assert figures["lip_sync_lag"] == 3
    assert figures["lip_sync_r"] == pytest.approx(np.corrcoef(measured, truth)[0, 1], abs=1e-9)
    assert figures["lip_sync_best_r"] == pytest.approx(np.corrcoef(measured[3:], truth[:-3])[0, 1], abs=1e-9)
    assert figures["lip_sync_best_r"] > 0.99 > figures["lip_sync_r"]
    np.testing.assert_allclose(result.series["late"]["mouth_measured"], measured)
    np.testing.assert_allclose(result.series["late"]["mouth_truth"], truth)
    assert result.summary["lip_sync_lag"] == 3
    with pytest.raises(ValueError, match="already measured"):
        metric.update(video)
    metric.reset()
    metric.update(video)  # a reset forgets the video


def test_world_lip_sync_mouth_option_and_missing_truth():
    truth = smooth_series(np.random.default_rng(1), 50)
    video = planted("v", mouth=truth, truth={"mouth_open": truth})
    area = wm.build_lip_sync(wm.WorldLipSyncConfig(mouth="area"), measurer=FakeMeasurer())
    area.update(video)  # green (area) is 0 in every frame: a constant reading has no correlation
    assert np.isnan(area.compute().per_video["v"]["lip_sync_r"])
    metric = wm.build_lip_sync(wm.WorldLipSyncConfig(), measurer=FakeMeasurer())
    with pytest.raises(MemoZooError, match="'bare'.*mouth_open"):
        metric.update(planted("bare", mouth=truth))
    # the truth may come with the ground-truth video instead
    metric.update(planted("v", mouth=truth), planted("v", mouth=truth, truth={"mouth_open": truth}))
    assert metric.compute().per_video["v"]["lip_sync_r"] == pytest.approx(1.0, abs=1e-4)


def test_world_identity_first_last_and_drift_on_a_constructed_sequence():
    fps, seconds = 25.0, 30
    t = np.arange(int(fps * seconds))
    similarity = np.round(np.clip(0.95 - 0.5 * t / len(t), 0, 1) * 255) / 255  # drifting away, as planted
    metric = wm.build_identity(wm.WorldIdentityConfig(window_seconds=10), measurer=FakeMeasurer())
    metric.update(planted("long", similarity=similarity, fps=fps))
    short = similarity[:100]  # 4 s < two 10 s windows: a quarter of the frames at each end
    metric.update(planted("short", similarity=short, fps=fps))
    result = metric.compute()
    long, brief = result.per_video["long"], result.per_video["short"]
    window = int(fps * 10)
    assert long["world_identity"] == pytest.approx(similarity.mean())
    assert long["world_identity_first"] == pytest.approx(similarity[:window].mean())
    assert long["world_identity_last"] == pytest.approx(similarity[-window:].mean())
    assert long["world_identity_drift"] == pytest.approx(similarity[:window].mean() - similarity[-window:].mean())
    assert long["world_identity_drift"] > 0
    assert brief["world_identity_window"] == 25
    assert brief["world_identity_first"] == pytest.approx(short[:25].mean())
    assert brief["world_identity_last"] == pytest.approx(short[-25:].mean())
    np.testing.assert_allclose(result.series["long"]["identity"], similarity, atol=1e-12)
    assert result.summary["world_identity"] == pytest.approx((similarity.mean() + short.mean()) / 2)


def test_world_identity_takes_the_ground_truths_first_frame_without_a_reference_image():
    metric = wm.build_identity(wm.WorldIdentityConfig(), measurer=FakeMeasurer())
    video = planted("v", similarity=np.full(10, 0.5), reference_image=False)
    with pytest.raises(MemoZooError, match="'v' has no reference image"):
        metric.update(video)
    gt = planted("v", similarity=np.full(10, 1.0), reference_image=False)  # its first frame embeds as (1, 0)
    metric.update(video, gt)
    assert metric.compute().per_video["v"]["world_identity"] == pytest.approx(round(0.5 * 255) / 255)


def test_world_expression_accuracy_and_clip_label_on_planted_labels():
    rng = np.random.default_rng(5)
    n = 90
    truth = np.repeat([3, 5, 0], 30)                       # happy, sad, angry (spec E4 indices)
    intensity = np.where(np.arange(n) % 30 < 4, 0.2, 0.9)  # each segment fades in: those frames do not count
    labels = truth.copy()
    wrong = rng.choice(n, 25, replace=False)
    labels[wrong] = (labels[wrong] + 1 + rng.integers(0, 7, 25)) % 8
    metric = wm.build_expression(wm.WorldExpressionConfig(), measurer=FakeMeasurer())
    metric.update(planted("v", labels=labels, truth={"emotion": truth, "intensity": intensity}))
    result = metric.compute()
    strong = intensity >= 0.5
    figures = result.per_video["v"]
    assert figures["world_expression_acc"] == pytest.approx(np.mean(labels[strong] == truth[strong]))
    assert figures["world_expression_frames"] == strong.sum()
    majority = np.bincount(labels[strong], minlength=8).argmax()
    assert figures["world_expression_clip"] == float(majority == 3)  # truth's majority: happy (a tie, earlier wins)
    np.testing.assert_array_equal(result.series["v"]["expression_measured"], labels)
    np.testing.assert_array_equal(result.series["v"]["expression_truth"], truth)
    # a clip whose measured majority is another label
    metric.update(planted("w", labels=np.full(n, 6), truth={"emotion": truth, "intensity": intensity}))
    assert metric.compute().per_video["w"] == {"world_expression_acc": 0.0, "world_expression_clip": 0.0,
                                               "world_expression_frames": float(strong.sum())}
    # no frame strong enough: undefined, left out of the summary means
    metric.update(planted("x", labels=labels, truth={"emotion": truth, "intensity": np.zeros(n)}))
    result = metric.compute()
    assert np.isnan(result.per_video["x"]["world_expression_acc"])
    assert result.summary["world_expression_acc"] == pytest.approx((figures["world_expression_acc"] + 0.0) / 2)


def test_world_fd_is_the_frechet_distance_of_the_features_in_float64():
    rng = np.random.default_rng(7)
    metric = wm.build_fd(wm.WorldFdConfig(), measurer=FakeMeasurer())
    generated, reference = [], []
    for i in range(3):
        g = rng.integers(0, 256, (40, 3))
        r = np.clip(rng.integers(0, 200, (50, 3)) + 30, 0, 255)
        metric.update(planted(f"v{i}", features=g), planted(f"v{i}", features=r))
        generated.append(g.astype(np.float64))
        reference.append(r.astype(np.float64))
        per_video = frechet_distance(generated[-1].mean(0), np.cov(generated[-1], rowvar=False),
                                     reference[-1].mean(0), np.cov(reference[-1], rowvar=False))
        assert metric.per_video[f"v{i}"]["world_fd"] == pytest.approx(per_video, rel=1e-9)
    g, r = np.concatenate(generated), np.concatenate(reference)
    expected = frechet_distance(g.mean(0), np.cov(g, rowvar=False), r.mean(0), np.cov(r, rowvar=False))
    result = metric.compute()
    assert isinstance(result, MetricResult)
    assert result.summary["world_fd"] == pytest.approx(expected, rel=1e-9)
    assert result.summary["frames"] == 120 and result.summary["reference_frames"] == 150


# ---- registry ----------------------------------------------------------------------------------------

def test_the_world_metrics_are_registered_and_build_without_training(registry, cache):
    metrics = registry.components["metric"]
    for kind, (_, config) in BUILDERS.items():
        assert kind in metrics, kind
        assert metrics[kind].plugin == "builtin_talking_world"  # the world's unit registers its metrics
        assert metrics[kind].spec.config is config
        spec = metrics[kind].spec
        assert spec.summary and all(field.description for field in spec.config.model_fields.values())
        metric = spec.factory(spec.config())
        assert isinstance(metric, Metric)
        with pytest.raises(Exception, match="extra|not permitted"):
            spec.config(no_such_option=1)
    for kind in ("fid", "fvd", "sync", "identity", "efid"):  # the standard suite is still there
        assert kind in metrics
    assert not cache.exists()  # building trained nothing and wrote nothing


# ---- the real measurer on a tiny world ----------------------------------------------------------------

def test_train_measurer_checks_against_held_out_truth_and_is_deterministic(tiny_world):
    options = training.MeasurerTraining(**TINY_TRAINING)
    measurer, report = training.train_measurer(tiny_world, options, progress=False)
    again, report2 = training.train_measurer(tiny_world, options, progress=False)
    for name, value in measurer.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name
    assert report.model_dump(exclude={"train_seconds"}) == report2.model_dump(exclude={"train_seconds"})
    assert report.train_identities == 2 and report.test_identities == 2
    assert report.heldout_clips == 4  # one of the two clips of every speaker
    assert report.rendered_frames == 4 * TINY_TRAINING["balanced_frames"]
    assert report.identity_pairs > 0 and 0 <= report.identity_auc <= 1
    assert np.isfinite([report.mouth_r_area, report.mouth_r_open, report.final_loss]).all()
    frames = np.zeros((3, 48, 48, 3), np.uint8)  # another size: resized to the measurer's 32 px
    m = measurer.measure(frames)
    assert m.features.shape == (3, measurer.feature_dim) and m.expression.shape == (3, len(PAPER_LABELS))
    np.testing.assert_allclose(np.linalg.norm(m.identity, axis=1), 1.0, atol=1e-6)


def test_store_trains_once_caches_atomically_and_loads_the_file_next_time(tiny_world, cache, monkeypatch):
    trained, replaced = [], []
    real_train, real_replace = store.train_measurer, os.replace

    def train(*args, **kwargs):
        trained.append(1)
        result = real_train(*args, **kwargs)
        replaced.clear()  # the renders' videos are written atomically too: only the store's writes count
        return result

    monkeypatch.setattr(store, "train_measurer", train)
    monkeypatch.setattr(os, "replace", lambda a, b: replaced.append((str(a), str(b))) or real_replace(a, b))
    config = source(tiny_world)
    measurer, report = store.load_or_train_measurer(config, progress=False)
    path = store.cache_path(tiny_world, config.training)
    assert trained == [1] and path.is_file() and store.report_path(path).is_file()
    assert path.parent == cache / "world_measurers"
    # report first, weights last, each from a temporary file in the same folder
    assert [b for _, b in replaced] == [str(store.report_path(path)), str(path)]
    assert all(os.path.dirname(a) == str(path.parent) and os.path.basename(a).startswith(".") for a, _ in replaced)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, store.report_path(path).name])
    assert store.load_or_train_measurer(config)[0] is measurer  # in-process: the same object
    # four metrics of one run share it: nothing trained again
    for build, make in BUILDERS.values():
        metric = build(make(world=tiny_world, device="cpu", training=TINY_TRAINING))
        metric.prepare()
        held = metric.measuring if isinstance(metric, wm.WorldFdMetric) else metric
        assert held.measurer is measurer and held.report == report
    store.clear_memo()
    loaded, loaded_report = store.load_or_train_measurer(config)  # a new process: read from the file
    assert trained == [1] and loaded is not measurer and loaded_report == report
    for name, value in measurer.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
    # another training option is another cache entry
    other = store.MeasurerSource(world=tiny_world, training={**TINY_TRAINING, "seed": 1})
    assert store.cache_path(tiny_world, other.training) != path
    assert store.cache_path(tiny_world, other.training.model_copy(update={"threads": 2, "seed": 0})) == path


def test_an_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    measurer = WorldMeasurer(MeasurerShape(size=16, width=4, embed_dim=4, identities=2))
    fields = training.MeasurerReport.model_fields
    report = training.MeasurerReport(**{name: "w" if name == "world" else 0 for name in fields})

    def broken(tensors, filename, metadata=None):
        open(filename, "wb").write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "save_file", broken)
    with pytest.raises(KeyboardInterrupt):
        store.save_measurer(measurer, report, tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # the weights (the completion marker) never landed


def test_a_saved_measurer_round_trips_with_an_undefined_figure(tmp_path):
    measurer = WorldMeasurer(MeasurerShape(size=16, width=4, embed_dim=4, identities=2))
    fields = training.MeasurerReport.model_fields
    report = training.MeasurerReport(**{name: "w" if name == "world" else 0 for name in fields})
    report = report.model_copy(update={"identity_auc": float("nan")})  # a world with one held-out identity
    loaded, loaded_report = store.load_measurer(store.save_measurer(measurer, report, tmp_path / "m.safetensors"))
    assert np.isnan(loaded_report.identity_auc) and loaded_report.mouth_r_area == 0
    assert loaded.shape == measurer.shape and not loaded.training
    for name, value in measurer.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name


def test_a_given_measurer_file_loads_or_names_what_is_wrong(tiny_world, cache, tmp_path):
    measurer, report = training.train_measurer(tiny_world, TINY_TRAINING, progress=False)
    path = store.save_measurer(measurer, report, tmp_path / "given.safetensors")
    for build, make in BUILDERS.values():  # a metric given a missing file names it, at prepare() (not at build)
        metric = build(make(measurer=tmp_path / "absent.safetensors"))
        with pytest.raises(MissingWeightsError, match="absent.safetensors"):
            metric.prepare()
    loaded, loaded_report = store.load_or_train_measurer(store.MeasurerSource(measurer=path))
    assert loaded_report == report and not cache.exists()  # nothing trained
    for name, value in measurer.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name])

    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(2)}, str(wrong), metadata={"format": "something else"})
    with pytest.raises(MemoZooError, match="wrong.safetensors.*format"):
        store.load_measurer(wrong)
    shapes = tmp_path / "shapes.safetensors"
    state = {k: v.contiguous() for k, v in measurer.state_dict().items()}
    state["identity_classes"] = torch.zeros(7, 3)
    save_file(state, str(shapes), metadata={"format": store.FORMAT, "format_version": str(store.FORMAT_VERSION),
                                            "shape": json.dumps(measurer.shape.to_dict())})
    with pytest.raises(MemoZooError, match="shapes.safetensors does not match"):
        store.load_measurer(shapes)
    store.report_path(path).unlink()
    with pytest.raises(MissingWeightsError, match="given.json"):
        store.load_measurer(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(MemoZooError, match="junk.safetensors is not a safetensors file"):
        store.load_measurer(tmp_path / "junk.safetensors")


def test_the_metrics_run_end_to_end_on_a_world_clip(tiny_world, cache):
    from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld, TalkingWorldConfig
    from memo_zoo_plugins.datasets.talking_world.truth import FRAME_FIELDS, load_truth

    clip = TalkingWorld(TalkingWorldConfig(**tiny_world.model_dump(), split="test"), progress=False).clips()[0]
    truth = load_truth(clip.truth)
    sample = VideoSample.from_file(clip.video)
    sample = VideoSample(id=sample.id, frames=sample.frames, fps=sample.fps, audio=sample.audio,
                         reference_image=sample.frames[0], truth={k: getattr(truth, k) for k in FRAME_FIELDS})
    options = dict(world=tiny_world, training=TINY_TRAINING, device="cpu")
    metrics = [build(make(**options)) for build, make in BUILDERS.values()]
    for metric in metrics:
        metric.update(sample, sample)
    results = [metric.compute() for metric in metrics]
    assert results[0].series[sample.id]["mouth_measured"].shape == (truth.frames,)
    assert results[1].series[sample.id]["identity"][0] == pytest.approx(1.0, abs=1e-5)  # frame 0 is the anchor
    assert len(results[2].series[sample.id]["expression_measured"]) == truth.frames
    features = metrics[3].features(sample)
    scale = np.trace(np.cov(features, rowvar=False))
    assert abs(results[3].summary["world_fd"]) <= 1e-4 * scale  # the ground truth against itself
    assert len(list((cache / "world_measurers").glob("*.safetensors"))) == 1  # trained once for the four


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.3, 0.8, 1.5]), min_size=1, max_size=4), st.integers(0, 2**16))
def test_gaussian_blur_is_each_frames_own_separable_gaussian(sigmas, seed):
    # Against scipy's gaussian_filter with the same truncation (3 sigma of the largest) and repeated
    # edges; sigma 0 leaves the frame exactly as it was.
    from scipy.ndimage import gaussian_filter1d

    x = torch.rand(len(sigmas), 3, 12, 10, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    out = training.gaussian_blur(x, torch.tensor(sigmas))
    radius = max(1, int(np.ceil(3 * max(sigmas))))
    for i, sigma in enumerate(sigmas):
        if sigma == 0:
            assert torch.equal(out[i], x[i])
            continue
        ref = x[i].double().numpy()
        for axis in (1, 2):
            ref = gaussian_filter1d(ref, sigma, axis=axis, mode="nearest", truncate=radius / sigma)
        assert np.allclose(out[i].numpy(), ref, atol=1e-5)


def test_blur_sigmas_draw_the_share_and_range_asked_for():
    sigma = training.blur_sigmas(20000, torch.Generator().manual_seed(0), 1.5, 0.3)
    blurred = sigma > 0
    assert abs(float(blurred.float().mean()) - 0.3) < 0.02 and float(sigma.max()) <= 1.5
    assert abs(float(sigma[blurred].mean()) - 0.75) < 0.03


def test_blur_changes_the_measurers_key_and_its_absence_keeps_the_old_one(tiny_world):
    plain = training.MeasurerTraining()
    # the default world's measurer as keyed before the blur options existed (computed on that code)
    assert store.measurer_key(WorldConfig(), plain) == "c45e2ce8301ebbc6"
    key = store.measurer_key(tiny_world, plain)
    # without blur its probability is inert, and the key is the one measurers had before blur existed
    assert store.measurer_key(tiny_world, plain.model_copy(update={"blur_probability": 0.9})) == key
    assert key == store.measurer_key(tiny_world, plain.model_copy(update={"blur": 0.0}))
    blurred = store.measurer_key(tiny_world, plain.model_copy(update={"blur": 1.5}))
    assert blurred != key
    assert store.measurer_key(tiny_world, plain.model_copy(update={"blur": 1.5, "blur_probability": 0.9})) != blurred


def test_round_trip_renders_are_added_and_key_the_measurer_by_the_autoencoders_weights(tiny_world):
    # The pixel autoencoder's round trip is exact: the same renders twice, each version with the
    # same truth. The key names the autoencoder's weights, so another autoencoder is another measurer.
    options = training.MeasurerTraining(**TINY_TRAINING, round_trip={"kind": "pixel"})
    measurer, report = training.train_measurer(tiny_world, options, progress=False)
    assert report.rendered_frames == 2 * 4 * TINY_TRAINING["balanced_frames"]
    plain = training.MeasurerTraining(**TINY_TRAINING)
    key = store.measurer_key(tiny_world, options)
    assert key != store.measurer_key(tiny_world, plain)
    assert key == store.measurer_key(tiny_world, options.model_copy())
    other = options.model_copy(update={"round_trip": {"kind": "pixel", "scaling_factor": 0.5}})
    assert store.measurer_key(tiny_world, other) != key
    with pytest.raises(MemoZooError, match="round_trip"):
        store.measurer_key(tiny_world, options.model_copy(update={"round_trip": {"kind": "pixel", "nope": 1}}))
