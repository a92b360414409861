"""The evaluation runner (missing weights skip one metric, not the run) and the comparison report
built back from MLflow (issue 7): table, best values, plots, ``memo-zoo report``."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

from memo_zoo.errors import MissingWeightsError
from memo_zoo.tracking.tracker import Tracker
from memo_zoo.eval.protocol import MetricResult, VideoSample
from memo_zoo.errors import MemoZooError
from memo_zoo.eval.report import _mouth_title, _pearson, collect, collect_many, comparison_table, report_run
from memo_zoo.eval.runner import MetricSkippedWarning, evaluate, log_evaluation
from tests.e2e.cli_helpers import memo_zoo


class MeanBrightness:
    """A fake metric: the mean pixel value per video, and its per-frame curve."""

    name = "brightness"

    def __init__(self):
        self.per_video, self.series, self.prepared = {}, {}, 0

    def prepare(self):
        self.prepared += 1

    def update(self, generated, reference=None):
        curve = generated.frames.reshape(len(generated.frames), -1).mean(axis=1)
        self.per_video[generated.id] = {"brightness": float(curve.mean()),
                                        "has_reference": float(reference is not None)}
        self.series[generated.id] = {"identity": curve / 255.0}

    def compute(self):
        return MetricResult(per_video=dict(self.per_video),
                            summary={"brightness": float(np.mean([v["brightness"] for v in self.per_video.values()]))},
                            series=dict(self.series))

    def reset(self):
        self.per_video, self.series = {}, {}


class NeedsWeights(MeanBrightness):
    name = "needs_weights"

    def prepare(self):
        raise MissingWeightsError("i3d: not found at /nowhere/i3d_torchscript.pt; put it there")


def video(name, value, frames=6):
    return VideoSample(id=name, frames=np.full((frames, 8, 8, 3), value, np.uint8), fps=25.0)


def pairs():
    yield video("a", 10), video("a", 12)
    yield video("b", 30), None


def test_missing_weights_skip_that_metric_and_the_rest_still_run():
    with pytest.warns(MetricSkippedWarning, match="i3d_torchscript.pt"):
        outcome = evaluate({"brightness": MeanBrightness(), "fvd": NeedsWeights()}, pairs, total=2,
                           show_progress=False)
    assert list(outcome.skipped) == ["fvd"] and "/nowhere/i3d_torchscript.pt" in outcome.skipped["fvd"]
    assert outcome.summary() == {"brightness": 20.0}
    assert outcome.per_video() == {"a": {"brightness": 10.0, "has_reference": 1.0},
                                   "b": {"brightness": 30.0, "has_reference": 0.0}}
    assert set(outcome.series()) == {"a/identity", "b/identity"}


def test_same_key_from_two_metrics_is_kept_apart():
    outcome = evaluate({"one": MeanBrightness(), "two": MeanBrightness()}, pairs(), show_progress=False)
    assert set(outcome.summary()) == {"brightness", "two.brightness"}


def _experiment(tmp_path, figures_by_variant, seed=0):
    """A parent run with one child per variant, each logged like the experiment task logs."""
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "reports", tmp_path / "artifacts", tmp_path)
    with tracker.run("ablate-test") as parent:
        for name, (brightness, drift) in figures_by_variant.items():
            with tracker.run(name, parent=parent, tags={"memo_zoo.variant": name,
                                                        "memo_zoo.experiment.fps": "25"}) as child:
                child.log_params({"seed": seed})
                outcome = evaluate({"brightness": MeanBrightness()}, [(video("v", brightness, 50), None)],
                                   show_progress=False)
                log_evaluation(child, outcome, prefix="eval/")
                child.log_metrics({"eval/world_identity_drift": drift, "loss": 1.0})
    return tracker, parent


def test_report_compares_variants_from_mlflow_alone(tmp_path):
    tracker, parent = _experiment(tmp_path, {"memo": (20, 0.01), "sa2": (40, -0.2), "sa16": (30, 0.05)})
    client = MlflowClient(tracker.uri)
    run, variants = collect(client, parent.id)
    assert [v.name for v in variants] == ["memo", "sa2", "sa16"]
    table = comparison_table(variants)
    assert table["variant"] == ["memo", "sa2", "sa16"]
    assert table["world_identity_drift"] == [0.01, -0.2, 0.05] and table["train_loss"] == [1.0, 1.0, 1.0]
    assert "loss" not in table
    files = report_run(client, parent.id, tmp_path / "report", log_to=parent)
    text = files.markdown.read_text()
    # drift: nearer zero is better -> memo's 0.01 is bold; brightness has no known direction
    assert "**0.01**" in text and "**-0.2**" not in text and "**40**" not in text
    assert {p.name for p in files.plots} == {"metrics_per_variant.png", "identity_over_time.png"}
    assert all(p.stat().st_size > 1000 for p in files.plots)
    assert "<table>" in files.html.read_text()
    logged = {a.path for a in client.list_artifacts(parent.id, "report")}
    assert "report/report.md" in logged and "report/identity_over_time.png" in logged
    assert "comparison.json" in {a.path for a in client.list_artifacts(parent.id)}


def test_report_command_rebuilds_and_rejects_unknown_runs(tmp_path):
    tracker, parent = _experiment(tmp_path, {"memo": (20, 0.0)})
    env = {"MEMO_ZOO_TRACKING_URI": tracker.uri}
    out = memo_zoo("report", parent.id, "--out", str(tmp_path / "again"), "--no-log", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "again" / "report.md").is_file() and (tmp_path / "again" / "report.html").is_file()
    bad = memo_zoo("report", "0123456789abcdef", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "no MLflow run '0123456789abcdef'" in bad.stderr


def test_variants_run_one_at_a_time_join_one_report(tmp_path):
    """`--variant` makes one parent run per variant; listing them all compares them as one sweep."""
    tracker, first = _experiment(tmp_path, {"memo": (20, 0.01)})
    _, second = _experiment(tmp_path, {"sa2": (40, -0.2)})
    client = MlflowClient(tracker.uri)
    run, variants = collect_many(client, [first.id, second.id])
    assert run.info.run_id == first.id and [v.name for v in variants] == ["memo", "sa2"]
    assert all(v.seed is None for v in variants)
    files = report_run(client, first.id, tmp_path / "report", also=[second.id])
    assert files.table["variant"] == ["memo", "sa2"] and files.table["world_identity_drift"] == [0.01, -0.2]


def test_a_variant_in_two_runs_becomes_its_seeds_mean_and_spread(tmp_path):
    tracker, seed0 = _experiment(tmp_path, {"memo": (20, 0.0), "sa2": (40, 0.2)}, seed=0)
    _, seed1 = _experiment(tmp_path, {"memo": (30, 0.1)}, seed=1)
    client = MlflowClient(tracker.uri)
    _, variants = collect_many(client, [seed0.id, seed1.id])
    assert [(v.name, v.seed) for v in variants] == [("memo", 0), ("sa2", None), ("memo", 1)]
    files = report_run(client, seed0.id, tmp_path / "report", also=[seed1.id])
    text = files.markdown.read_text()
    assert "up to 2 seed(s)" in text and variants[2].run_id in text
    # the same variant and seed twice (a rerun) is ambiguous: named, not averaged
    _, again = _experiment(tmp_path, {"memo": (25, 0.0)}, seed=0)
    with pytest.raises(MemoZooError, match="'memo' with seed 0 is in runs \\w+ and \\w+: list only one"):
        collect_many(client, [seed0.id, seed1.id, again.id])


def test_report_command_takes_several_runs(tmp_path):
    tracker, first = _experiment(tmp_path, {"memo": (20, 0.0)})
    _, second = _experiment(tmp_path, {"sa2": (40, 0.1)})
    env = {"MEMO_ZOO_TRACKING_URI": tracker.uri}
    out = memo_zoo("report", first.id, second.id, "--out", str(tmp_path / "both"), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "sa2" in (tmp_path / "both" / "report.md").read_text()
    logged = {a.path for a in MlflowClient(tracker.uri).list_artifacts(first.id, "report")}
    assert "report/report.md" in logged
    bad = memo_zoo("report", first.id, "0123456789abcdef", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "no MLflow run '0123456789abcdef'" in bad.stderr


def test_the_mouth_plot_titles_each_video_with_its_own_pearson_r():
    """The mouth figure names one video; its title's r is that video's (np.corrcoef), not the mean."""
    rng = np.random.default_rng(3)
    truth = rng.normal(size=300)
    measured = 0.6 * truth + rng.normal(size=300)
    assert _pearson(measured, truth) == pytest.approx(np.corrcoef(measured, truth)[0, 1], abs=1e-12)
    assert _pearson(-measured, truth) == pytest.approx(-np.corrcoef(measured, truth)[0, 1], abs=1e-12)


def test_the_mouth_title_uses_the_frames_both_curves_have():
    rng = np.random.default_rng(4)
    truth = rng.normal(size=200)
    measured = np.concatenate([0.5 * truth + rng.normal(size=200), rng.normal(size=40)])
    own = np.corrcoef(measured[:200], truth)[0, 1]
    assert _mouth_title("n4", measured, truth, 0.25) == f"n4  (r = {own:.3f} on this video, 0.250 mean over videos)"
    assert _mouth_title("n4", measured[:150], truth, None) == (
        f"n4  (r = {np.corrcoef(measured[:150], truth[:150])[0, 1]:.3f} on this video)")
    assert _mouth_title("n4", measured, None, 0.25) == "n4  (0.250 mean over videos)"
    assert _mouth_title("n4", measured, None, float("nan")) == "n4"


def test_the_background_plot_draws_each_variant_over_the_longest_video(tmp_path):
    from memo_zoo.eval.report import VariantResult, plot_background, write_report

    walk = np.linspace(0, 40, 200)
    variants = [VariantResult("memo", "r1", "FINISHED", {"background_error": 20.0}, 25.0,
                              {"long/background_error": walk, "short/background_error": walk[:50]}),
                VariantResult("own", "r2", "FINISHED", {"background_error": 5.0}, 25.0,
                              {"long/background_error": walk / 4})]
    path = plot_background(variants, tmp_path / "background.png")
    assert path is not None and path.stat().st_size > 1000
    assert plot_background([VariantResult("x", "r3", "FINISHED", {}, 25.0)], tmp_path / "none.png") is None

    class _Run:
        info = type("info", (), {"run_id": "p", "status": "FINISHED"})()
        data = type("data", (), {"tags": {"mlflow.runName": "colour"}})()

    files = write_report(_Run(), variants, tmp_path / "report")
    assert "background_over_time.png" in {p.name for p in files.plots}
    # lower is better: own's 5 is the best background error
    assert "**5**" in files.markdown.read_text()
