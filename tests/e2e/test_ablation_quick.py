"""The main job end to end (issue 7): ``memo-zoo run recipes/ablate_memory.yaml --quick``.

Trains four variants on a tiny world, generates the held-out video with each, measures it with
the world metrics (the measurer trained on the spot) and the standard suite (skipped: no weights
here, each with a message naming its file), and writes the comparison on the parent run. A second
run of one variant finds the training and the video done and only measures again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.e2e.cli_helpers import memo_zoo

pytestmark = pytest.mark.slow

VARIANTS = ["self_attention_n2", "self_attention_n4", "self_attention_n16", "linear_memory"]


def _children(client, parent):
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                              order_by=["attributes.start_time ASC"])
    return {r.data.tags["memo_zoo.variant"]: r for r in runs}


def test_ablate_memory_quick_end_to_end(tmp_path, repo_root):
    env = {"MEMO_ZOO_CACHE_DIR": str(tmp_path / "cache"), "MEMO_ZOO_WEIGHTS_DIR": str(tmp_path / "weights")}
    (tmp_path / "weights").mkdir()
    recipe = str(repo_root / "recipes" / "ablate_memory.yaml")
    out = memo_zoo("run", recipe, "--quick", cwd=tmp_path, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    parent_id = out.stdout.split()[1]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    children = _children(client, parent)
    assert list(children) == VARIANTS
    for name, child in children.items():
        assert child.info.status == "FINISHED", name
        metrics = child.data.metrics
        for key in ("eval/lip_sync_r", "eval/world_identity", "eval/world_identity_drift",
                    "eval/world_expression_acc", "eval/world_fd", "eval/background_error", "gen/seconds_per_frame",
                    "loss"):
            assert key in metrics, (name, key, sorted(metrics))
        # the standard suite has no weights here: skipped, each naming the file it needs
        skipped = child.data.tags["memo_zoo.eval.skipped"]
        assert {"fid", "fvd", "sync", "identity"} <= set(skipped.split(", "))
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"per_video.json", "series.npz", "skipped_metrics.json", "measurer_check.json", "videos"} <= artifacts
    # The first variant trains the autoencoder (spec A1), the others reuse its folder.
    first = children[VARIANTS[0]]
    assert first.data.tags["memo_zoo.vae"].startswith("trained ") and "vae.eval_psnr" in first.data.metrics
    assert "reconstructions.png" in {a.path for a in client.list_artifacts(first.info.run_id)}
    assert all(children[v].data.tags["memo_zoo.vae"].startswith("reused ") for v in VARIANTS[1:])
    # Stage 1 (L2) too: trained once, in the first variant's run (curve stage1.loss), then shared.
    assert first.data.tags["memo_zoo.experiment.stage1"].startswith("trained ") and "stage1.loss" in first.data.metrics
    assert all(children[v].data.tags["memo_zoo.experiment.stage1"].startswith("reused ") for v in VARIANTS[1:])
    assert len(list((tmp_path / "experiments").glob("stage1-*"))) == 1
    report = {a.path for a in client.list_artifacts(parent_id, "report")}
    assert {"report/report.md", "report/report.html", "report/metrics_per_variant.png",
            "report/identity_over_time.png", "report/background_over_time.png", "report/mouth_sync.png"} <= report
    assert "comparison.json" in {a.path for a in client.list_artifacts(parent_id)}
    text = next((tmp_path / "experiments" / "ablate-memory" / "reports").glob("*/report.md")).read_text()
    assert all(v in text for v in VARIANTS)
    local = client.download_artifacts(children["linear_memory"].info.run_id, "skipped_metrics.json", str(tmp_path))
    assert "i3d_torchscript.pt" in Path(local).read_text()

    again = memo_zoo("run", recipe, "--quick", "--variant", "linear_memory", cwd=tmp_path, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = client.get_run(again.stdout.split()[1])
    child = _children(client, rerun)["linear_memory"]
    assert child.data.tags["memo_zoo.experiment.training"].startswith("reused ")
    # ... and still reports the loss that training ended with, for the comparison's train_loss.
    assert child.data.metrics["loss"] == pytest.approx(children["linear_memory"].data.metrics["loss"])
    assert child.data.metrics["eval/lip_sync_r"] == pytest.approx(children["linear_memory"].data.metrics["eval/lip_sync_r"])

    # The manual-override study (issue 23) on the same training: 8 labels + a schedule, measured.
    override = memo_zoo("run", str(repo_root / "recipes" / "emotion_override.yaml"), "--quick", "--variant", "memo",
                        cwd=tmp_path, env=env, timeout=600)
    assert override.returncode == 0, override.stderr[-3000:]
    run = _children(client, client.get_run(override.stdout.split()[1]))["memo"]
    assert run.info.status == "FINISHED"
    assert run.data.tags["memo_zoo.experiment.training"].startswith("reused ")
    metrics = run.data.metrics
    assert 0.0 <= metrics["override/expression_acc"] <= 1.0
    assert {f"override/expression_acc_{label}" for label in ("angry", "happy", "sad", "neutral")} <= set(metrics)
    assert {"override/schedule_acc", "override/read_as_audio", "override/lip_sync_r", "override/world_identity"} \
        <= set(metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "override")}
    assert {"override/confusion.png", "override/schedule.png", "override/confusion.json", "override/schedule.json",
            "override/per_video.json", "override/videos"} <= artifacts
    matrix = client.download_artifacts(run.info.run_id, "override/confusion.json", str(tmp_path))
    import json

    counts = json.loads(Path(matrix).read_text())["counts"]
    assert len(counts) == 8 and all(sum(row) == 25 for row in counts)  # 1 s at 25 fps per requested label
