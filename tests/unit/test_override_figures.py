"""The override study's figures (memo_zoo.tasks.override_figures): the confusion matrix, the share
read as requested, the share read as the audio's emotion and the per-segment schedule accuracy,
each against a direct count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydantic import ValidationError

from memo_zoo.tasks.experiment_config import OverrideOptions
from memo_zoo.tasks.override_figures import (confusion, override_accuracy, plot_confusion, plot_schedule,
                                             read_as_audio, row_shares, segment_accuracy)

videos = st.lists(st.tuples(st.integers(0, 7), st.lists(st.integers(0, 7), min_size=1, max_size=40)),
                  min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(videos)
def test_confusion_counts_every_frame_once(items):
    requested = [np.full(len(read), label) for label, read in items]
    measured = [np.array(read) for _, read in items]
    counts = confusion(requested, measured, 8)
    assert counts.sum() == sum(len(read) for _, read in items)
    for label, read in items:  # row `label` holds at least this video's readings
        assert all(counts[label, r] >= read.count(r) for r in set(read))
    shares = row_shares(counts)
    asked = counts.sum(1) > 0
    assert np.allclose(shares[asked].sum(1), 1.0) and np.isnan(shares[~asked]).all()
    accuracy, per_label = override_accuracy(counts)
    direct = {}
    for label, read in items:
        hits, total = direct.get(label, (0, 0))
        direct[label] = (hits + read.count(label), total + len(read))
    expected = {label: hits / total for label, (hits, total) in direct.items()}
    assert np.allclose([per_label[label] for label in expected], list(expected.values()))
    assert np.isclose(accuracy, np.mean(list(expected.values())))


def test_confusion_ignores_unread_frames_and_cuts_to_the_shorter_series():
    counts = confusion([np.array([1, 1, 1, 1])], [np.array([1, -1, 2])], 8)
    assert counts[1, 1] == 1 and counts[1, 2] == 1 and counts.sum() == 2


def test_read_as_audio_counts_only_expressive_frames_where_another_label_was_asked():
    requested = np.array([3, 3, 3, 3, 3, 3])
    audio = np.array([3, 3, 5, 5, 5, 5])       # frames 0-1: the request is the audio's own emotion
    expressive = np.array([1, 1, 1, 1, 1, 0], bool)  # frame 5: fading, not counted
    measured = np.array([3, 3, 5, 3, 5, 5])
    assert read_as_audio(requested, measured, audio, expressive) == 2 / 3
    assert np.isnan(read_as_audio(requested, measured, requested, expressive))


def test_segment_accuracy_follows_the_runs_of_the_schedule():
    requested = np.array([4, 4, 4, 3, 3, 5, 5, 5, 5])
    measured = np.array([4, 1, 4, 3, 3, 0, 5, 0, 0])
    assert segment_accuracy(requested, measured) == [(4, 0, 3, 2 / 3), (3, 3, 5, 1.0), (5, 5, 9, 0.25)]


def test_plots_are_written(tmp_path):
    rng = np.random.default_rng(0)
    labels = [f"l{i}" for i in range(8)]
    counts = rng.integers(0, 20, (8, 8))
    counts[2] = 0  # a label never requested
    path = plot_confusion(counts, labels, tmp_path / "c.png", "t")
    requested = np.repeat([4, 3, 5], 20)
    schedule = plot_schedule(requested, rng.integers(0, 8, 60), 25.0, labels, tmp_path / "s.png", "t")
    assert path.stat().st_size > 1000 and schedule.stat().st_size > 1000


@pytest.mark.parametrize("bad, words", [
    ({"labels": ["joy"]}, "joy"),
    ({"schedule": [{"start_s": 0, "end_s": 1, "label": "calm"}]}, "calm"),
    ({"schedule": [{"start_s": 1, "end_s": 2, "label": "sad"}]}, "contiguous from 0"),
    ({"schedule": [{"start_s": 0, "end_s": 1, "label": "sad"}, {"start_s": 1.5, "end_s": 2, "label": "sad"}]},
     "starts at 1.5"),
    ({"metrics": []}, "world_expression"),
])
def test_override_options_refuse_what_the_study_cannot_measure(bad, words):
    with pytest.raises(ValidationError, match=words):
        OverrideOptions(**bad)


def test_a_recipe_without_the_expression_metric_is_refused_before_training():
    from types import SimpleNamespace

    from memo_zoo.errors import MemoZooError
    from memo_zoo.tasks.experiment import ExperimentTask
    from memo_zoo.tasks.experiment_config import ExperimentConfig

    task = ExperimentTask(ExperimentConfig(override=OverrideOptions()))
    context = SimpleNamespace(recipe=SimpleNamespace(metrics=[SimpleNamespace(kind="world_lip_sync")]))
    with pytest.raises(MemoZooError, match="no 'world_expression'.*nothing was run"):
        task._check_override(context)
    context.recipe.metrics.append(SimpleNamespace(kind="world_expression"))
    task._check_override(context)
