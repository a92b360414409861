"""Evaluation sharded over workers (issue 21): the state/merge contract and the Ray runner.

Without Ray: for any split of a set of videos into contiguous shards, merging the shards' states
in order gives the state and the figures of one metric that measured them all (hypothesis), for
the per-video metrics and the Frechet metrics. With a local Ray cluster (module scope, 2 CPUs):
FID, FVD, Sync, background and the four world metrics, on tiny random-init networks saved in the
real formats, give exactly the same summary, per-video rows and series with 2 workers as with 1,
and a metric whose weights are missing is skipped the same way. The CLI is tested end to end in
tests/e2e/test_evaluate_cli.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memo_zoo.errors import MemoZooError
from memo_zoo.eval.frechet import FrechetMetric, FrechetState
from memo_zoo.eval.protocol import MetricResult, PerVideoState, VideoSample
from memo_zoo.eval.runner import evaluate
from memo_zoo.eval.sharded import shard_bounds
from memo_zoo.slots.metric import ShardableMetric
from memo_zoo_eval.metrics import background, fid, fvd, sync
from memo_zoo_plugins.datasets.talking_world.measure import metrics as wm
from memo_zoo_plugins.datasets.talking_world.measure import store, training
from memo_zoo_plugins.datasets.talking_world.measure.measurer import MeasurerShape, WorldMeasurer
from tests.plugins.test_metrics import FakeI3D, FakeInception, script


def sample(id: str, seed: int, frames: int = 10, size: int = 24, audio: bool = True) -> VideoSample:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (frames, size, size, 3)).astype(np.uint8)
    truth = {"mouth_open": rng.random(frames), "emotion": rng.integers(0, 8, frames).astype(np.float64),
             "intensity": rng.random(frames)}
    sound = (rng.standard_normal(int(frames / 25 * 16000)) * 0.1).astype(np.float32) if audio else None
    return VideoSample(id=id, frames=pixels, fps=25.0, audio=sound, reference_image=pixels[0].copy(), truth=truth)


def pairs(count: int, frames: int = 10, size: int = 24) -> list[tuple[VideoSample, VideoSample]]:
    return [(sample(f"v{i}", i, frames, size), sample(f"v{i}", 100 + i, frames, size)) for i in range(count)]


class RowFeatures(FrechetMetric):
    """A Frechet metric without a network: each frame's mean colour and spread (4-d)."""

    name = "rows"

    def __init__(self, per_video_distance: bool = True):
        super().__init__(None, per_video_distance)

    def _load(self) -> None:
        pass

    def features(self, video: VideoSample) -> np.ndarray:
        f = video.frames.astype(np.float64) / 255
        return np.concatenate([f.mean(axis=(1, 2)), f.std(axis=(1, 2, 3))[:, None]], axis=1)


def cheap_metrics() -> dict[str, ShardableMetric]:
    return {"rows": RowFeatures(), "background": background.build(background.BackgroundConfig())}


def assert_same_results(a: dict[str, MetricResult], b: dict[str, MetricResult], rtol: float = 0.0) -> None:
    """Same metrics, videos, keys and order; figures exact, or within ``rtol`` where the two sides ran
    the networks in different processes (their thread counts change float32 summation order)."""
    assert list(a) == list(b)
    for name in a:
        if not rtol:
            # exact: NaN == NaN via repr, and dict order (the videos' order) included
            assert repr(a[name].summary) == repr(b[name].summary), name
            assert repr(a[name].per_video) == repr(b[name].per_video), name
        else:
            _close(a[name].summary, b[name].summary, rtol, name)
            assert list(a[name].per_video) == list(b[name].per_video), name
            for video, row in a[name].per_video.items():
                _close(row, b[name].per_video[video], rtol, f"{name} {video}")
        assert list(a[name].series) == list(b[name].series), name
        for video, curves in a[name].series.items():
            assert list(curves) == list(b[name].series[video])
            for key, values in curves.items():
                np.testing.assert_allclose(values, b[name].series[video][key], rtol=rtol, atol=1e-9 if rtol else 0)


# SyncNet's offset is the argmin of its distances over the shifts. With the random test network every
# shift is as far as any other (confidence sync_c ~ 0), so a float32 rounding difference between
# processes may pick another shift; the offset is compared only where the confidence makes it defined.
OFFSET_KEYS = ("av_offset", "abs_av_offset")


def _close(a: dict, b: dict, rtol: float, where: str) -> None:
    assert list(a) == list(b), where
    for key in a:
        if key in OFFSET_KEYS and max(abs(a.get("sync_c", 1.0)), abs(b.get("sync_c", 1.0))) < 1e-6:
            continue
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=1e-9, equal_nan=True, err_msg=f"{where} {key}")


def assert_same_state(a: object, b: object) -> None:
    assert type(a) is type(b)
    if isinstance(a, PerVideoState):
        assert repr(a.per_video) == repr(b.per_video) and list(a.series) == list(b.series)
    else:
        assert [v.id for v in a.videos] == [v.id for v in b.videos]
        for x, y in zip(a.videos, b.videos):
            assert x.entry == y.entry and x.features.dtype == y.features.dtype
            np.testing.assert_array_equal(x.features, y.features)
            np.testing.assert_array_equal(x.reference, y.reference)


# ---- the contract, without Ray ----------------------------------------------------------------------

@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(2, 7), min_size=1, max_size=6), data=st.data())
def test_merging_the_states_of_any_split_equals_one_metric_over_all(lengths, data):
    videos = [(sample(f"v{i}", i, n, 8, audio=False), sample(f"v{i}", 50 + i, n, 8, audio=False))
              for i, n in enumerate(lengths)]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(videos)), max_size=3)))
    bounds = list(zip([0] + cuts, cuts + [len(videos)]))
    whole = cheap_metrics()
    for metric in whole.values():
        metric.begin_shard()
        for generated, reference in videos:
            metric.update(generated, reference)
    states = []
    for start, stop in bounds:  # empty shards included: they merge as nothing
        shard = cheap_metrics()
        for metric in shard.values():
            metric.begin_shard()
            for generated, reference in videos[start:stop]:
                metric.update(generated, reference)
        states.append({name: metric.state() for name, metric in shard.items()})
    driver = cheap_metrics()
    for name, metric in driver.items():
        metric.begin_shard()
        for state in states:
            metric.merge(state[name])
        assert_same_state(metric.state(), whole[name].state())
    assert_same_results({n: m.compute() for n, m in whole.items()}, {n: m.compute() for n, m in driver.items()})
    # the Frechet statistics are the very same numbers, not merely close
    np.testing.assert_array_equal(driver["rows"].generated.cov, whole["rows"].generated.cov)


@given(count=st.integers(1, 50), shards=st.integers(1, 12))
def test_shards_are_contiguous_ordered_and_balanced(count, shards):
    bounds = shard_bounds(count, shards)
    assert len(bounds) == min(count, shards) and bounds[0][0] == 0 and bounds[-1][1] == count
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_merge_refuses_a_video_twice_and_another_metrics_state():
    metric = RowFeatures()
    metric.begin_shard()
    generated, reference = pairs(1, 4, 8)[0]
    metric.update(generated, reference)
    state = metric.state()
    driver = RowFeatures()
    driver.merge(state)
    with pytest.raises(MemoZooError, match="'v0' is in two shards"):
        driver.merge(state)
    with pytest.raises(MemoZooError, match="expected the PerVideoState"):
        background.build(background.BackgroundConfig()).merge(state)
    with pytest.raises(MemoZooError, match="begin_shard"):
        RowFeatures().state()
    assert isinstance(state, FrechetState) and state.videos[0].features.dtype == np.float64  # not float32-exact


class OneProcessOnly:
    """A third-party metric written before issue 21: no begin_shard / state / merge."""

    name = "legacy"

    def prepare(self) -> None:
        pass

    def update(self, generated, reference=None) -> None:
        pass

    def compute(self) -> MetricResult:
        return MetricResult(summary={"legacy": 1.0})

    def reset(self) -> None:
        pass


def test_a_metric_without_state_runs_in_one_process_and_is_refused_on_workers_by_name():
    videos = pairs(2, 4, 8)
    assert evaluate({"legacy": OneProcessOnly()}, videos, show_progress=False).summary() == {"legacy": 1.0}
    with pytest.raises(MemoZooError, match=r"metric legacy \(.*OneProcessOnly\) cannot be evaluated on several "
                                           r"workers.*workers 1"):
        evaluate({"legacy": OneProcessOnly(), **cheap_metrics()}, videos, workers=2, show_progress=False)


def test_without_ray_several_workers_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MemoZooError, match=r"pip install 'memo-zoo\[ray\]'"):
        evaluate(cheap_metrics(), pairs(2, 4, 8), workers=2, show_progress=False)


# ---- on a local Ray cluster ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    """The cluster evaluation starts itself when given no address (``sharded.connect``)."""
    pytest.importorskip("ray")
    import os

    from memo_zoo.eval.eval_options import EvalOptions
    from memo_zoo.eval.sharded import connect

    auth_mode, address = os.environ.get("RAY_AUTH_MODE"), os.environ.pop("RAY_ADDRESS", None)
    ray = connect(EvalOptions(workers=2))
    yield ray
    ray.shutdown()
    # Ray's start turns its token mode on in this process's environment; later tests start afresh.
    if auth_mode is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    if address is not None:
        os.environ["RAY_ADDRESS"] = address


def test_the_cluster_evaluation_starts_listens_on_the_loopback_only(ray_cluster):
    import os

    import psutil

    assert ray_cluster.cluster_resources()["CPU"] == 2
    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    listening = [c.laddr for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert listening, "the cluster's servers were not found"
    assert all(addr.ip in ("127.0.0.1", "::ffff:127.0.0.1") for addr in listening), listening


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """Tiny random-init networks in the real formats: FID / FVD TorchScript, a SyncNet state dict,
    a world measurer file with its report."""
    folder = tmp_path_factory.mktemp("nets")
    torch.manual_seed(0)
    syncnet = folder / "syncnet_v2.model"
    torch.save({k: v for k, v in sync.SyncNet().state_dict().items() if not k.endswith("num_batches_tracked")},
               syncnet)
    measurer = WorldMeasurer(MeasurerShape(size=16, width=4, embed_dim=8, identities=2))
    fields = training.MeasurerReport.model_fields
    report = training.MeasurerReport(**{name: "tiny" if name == "world" else 0 for name in fields})
    return {"fid": script(FakeInception(), folder / "inception.pt"), "fvd": script(FakeI3D(), folder / "i3d.pt"),
            "sync": str(syncnet), "world": str(store.save_measurer(measurer, report, folder / "m.safetensors"))}


def all_metrics(nets: dict[str, str]) -> dict[str, ShardableMetric]:
    world = dict(measurer=nets["world"], device="cpu", batch_size=4)
    return {
        "fid": fid.build(fid.FidConfig(weights=nets["fid"], device="cpu", per_video_distance=True)),
        "fvd": fvd.build(fvd.FvdConfig(weights=nets["fvd"], clip_length=4, clip_stride=4, device="cpu")),
        "sync": sync.build(sync.SyncConfig(weights=nets["sync"], device="cpu")),
        "background": background.build(background.BackgroundConfig()),
        "world_lip_sync": wm.build_lip_sync(wm.WorldLipSyncConfig(**world, max_lag=2)),
        "world_identity": wm.build_identity(wm.WorldIdentityConfig(**world)),
        "world_expression": wm.build_expression(wm.WorldExpressionConfig(**world)),
        "world_fd": wm.build_fd(wm.WorldFdConfig(**world, per_video_distance=True)),
        "fid.absent": fid.build(fid.FidConfig(weights="absent-inception.pt", device="cpu")),
    }


def test_two_workers_give_the_figures_of_one_process(ray_cluster, networks):
    videos = pairs(5)  # shards of 3 and 2 videos
    with pytest.warns(UserWarning, match="fid.absent skipped"):
        one = evaluate(all_metrics(networks), videos, workers=1, show_progress=False)
    with pytest.warns(UserWarning, match="fid.absent skipped"):
        two = evaluate(all_metrics(networks), videos, workers=2, show_progress=False)
    assert set(one.results) == {"fid", "fvd", "sync", "background", "world_lip_sync", "world_identity",
                                "world_expression", "world_fd"}
    assert one.skipped == two.skipped and "absent-inception.pt" in two.skipped["fid.absent"]
    # Ray's workers run the metrics' networks with their own thread counts: float rounding apart
    assert_same_results(one.results, two.results, rtol=1e-6)
    _close(one.summary(), two.summary(), 1e-6, "summary")
    assert list(one.per_video()) == list(two.per_video()) == [f"v{i}" for i in range(5)]
    assert one.summary()["frames"] == 50 and np.isfinite(one.summary()["fid"])


def test_a_worker_error_is_raised_as_itself(ray_cluster, networks):
    generated, reference = pairs(2, 6, 16)[1]
    silent = VideoSample(id="silent", frames=generated.frames, fps=25.0)  # no audio
    metrics = {"sync": sync.build(sync.SyncConfig(weights=networks["sync"], device="cpu"))}
    with pytest.raises(MemoZooError, match="sync: video 'silent' has no audio"):
        evaluate(metrics, [pairs(1, 6, 16)[0], (silent, reference)], workers=2, show_progress=False)


def test_an_unreachable_cluster_fails_fast_naming_the_address(monkeypatch):
    ray = pytest.importorskip("ray")
    from memo_zoo.eval.eval_options import EvalOptions
    from memo_zoo.eval.sharded import connect

    # As if no Ray were connected in this process (a module fixture may hold one): the head is
    # probed before ray.init, which would otherwise retry for a long time.
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(MemoZooError, match=r"127\.0\.0\.1:1 .*task\.evaluation\.address or --address"):
        connect(EvalOptions(workers=2, address="127.0.0.1:1"))
