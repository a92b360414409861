"""Emotion per clip (spec E3-E5; ``memo_zoo/generate/emotion.py``): an override for every clip, a
schedule taking the majority per clip with the rest detected, detection, no detector, bad labels."""

from __future__ import annotations

import pytest

from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.pipeline import generate_video
from memo_zoo.generate.warning import GenerationWarning
from tests.unit.test_generate import (ANGRY, FPS, FRAMES, HAPPY, NO_EMOTION, SAD, SURPRISED,  # noqa: F401
                                      OneEulerStep, config, inputs, make_model, one_thread, run, spy_forward,
                                      with_sampler)


def clip_emotions_seen(forwards) -> list[int]:
    """The emotion of the fully conditional row of each call (scale 1: the only row)."""
    return [int(call["emotion"][-1]) for call in forwards]


def test_emotion_override_applies_to_every_clip(inputs, tmp_path, monkeypatch):
    sampler = OneEulerStep()
    model = with_sampler(make_model(detector={"kind": "fixed", "label": "happy"}), sampler)
    forwards = spy_forward(monkeypatch, model.net)
    result = run(model, config(inputs, tmp_path, emotion="sad", cfg={"scale": 1.0}))
    assert clip_emotions_seen(forwards) == [SAD] * 6
    assert {(e["label"], e["source"]) for e in result.emotion_schedule} == {("sad", "override")}


def test_emotion_schedule_takes_the_majority_per_clip_and_detects_the_rest(inputs, tmp_path, monkeypatch):
    sampler = OneEulerStep()
    model = with_sampler(make_model(detector={"kind": "fixed", "label": "happy"}), sampler)
    forwards = spy_forward(monkeypatch, model.net)
    # Frames 0-6 angry, 7-14 surprised (by their midpoints), 15-22 uncovered -> detector (happy).
    schedule = [{"start_s": 0.0, "end_s": 0.3, "label": "angry"}, {"start_s": 0.3, "end_s": 0.62, "label": "surprised"}]
    result = run(model, config(inputs, tmp_path, emotion=schedule, cfg={"scale": 1.0}))
    expected = [ANGRY, ANGRY, SURPRISED, SURPRISED, HAPPY, HAPPY]
    assert clip_emotions_seen(forwards) == expected
    assert [e["label"] for e in result.emotion_schedule] == [PAPER_LABELS[i] for i in expected]
    assert result.emotion_schedule[-1]["end_s"] == pytest.approx(FRAMES / FPS)


def test_detected_emotion_and_no_detector(inputs, tmp_path, monkeypatch):
    sampler = OneEulerStep()
    model = with_sampler(make_model(detector={"kind": "fixed", "label": "fearful"}), sampler)
    forwards = spy_forward(monkeypatch, model.net)
    result = run(model, config(inputs, tmp_path, emotion=None, cfg={"scale": 1.0}))
    assert clip_emotions_seen(forwards) == [PAPER_LABELS.index("fearful")] * 6
    assert result.emotion_schedule[0]["source"] == "detected"

    plain = with_sampler(make_model(), OneEulerStep())
    seen = spy_forward(monkeypatch, plain.net)
    with pytest.warns(GenerationWarning, match="no emotion_detector"):
        generate_video(plain, config(inputs, tmp_path, emotion=None, cfg={"scale": 1.0}, check_face=False),
                       progress=False)
    assert clip_emotions_seen(seen) == [NO_EMOTION] * 6


def test_unknown_emotion_and_overlapping_schedule_are_refused(inputs, tmp_path):
    with pytest.raises(MemoZooError, match="unknown emotion 'joyful'.*happy"):
        run(make_model(), config(inputs, tmp_path, emotion="joyful"))
    with pytest.raises(ValueError, match="overlap"):
        config(inputs, tmp_path, emotion=[{"start_s": 0, "end_s": 1, "label": "sad"},
                                          {"start_s": 0.5, "end_s": 2, "label": "happy"}])
