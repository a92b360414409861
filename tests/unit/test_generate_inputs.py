"""Generation's inputs (spec §6 I1, D3; ``memo_zoo/generate/inputs.py``): the frame count, bad files
named in the error, and a portrait without a face (a warning, not an error)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memo_zoo.errors import MemoZooError
from memo_zoo.generate.inputs import frame_count
from memo_zoo.generate.pipeline import generate_video
from memo_zoo.generate.warning import GenerationWarning
from tests import data_fixtures as fx
from tests.unit.test_generate import config, inputs, make_model, one_thread, run, write_wav  # noqa: F401  (fixtures)


def test_frame_count_is_ceil_of_audio_seconds_times_fps():
    assert frame_count(16_000, 25) == 25
    assert frame_count(16_001, 25) == 26
    assert frame_count(14_400, 25) == 23  # 0.9 s
    assert frame_count(16_000, 30000 / 1001) == 30  # 29.97 fps, 1 s -> 29.97 -> 30
    assert frame_count(1, 25) == 1


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bad_inputs_name_the_file(inputs, tmp_path):
    model = make_model()
    image, audio = inputs
    (tmp_path / "notes.png").write_text("not an image")
    cases = {
        "missing image": {"image": tmp_path / "nowhere.png"},
        "unreadable image": {"image": tmp_path / "notes.png"},
        "missing audio": {"audio": tmp_path / "nowhere.wav"},
        "unreadable audio": {"audio": fx.write_empty(tmp_path / "empty.m4a")},
        "corrupt audio": {"audio": write_bytes(tmp_path / "noise.mp3", bytes(range(256)) * 8)},
        "no samples": {"audio": write_wav(tmp_path / "nothing.wav", np.zeros(0, np.float32))},
        "silent audio": {"audio": write_wav(tmp_path / "silence.wav", np.zeros(16_000, np.float32))},
    }
    for name, change in cases.items():
        path = next(iter(change.values()))
        with pytest.raises(MemoZooError) as error:
            run(model, config(inputs, tmp_path, **change))
        assert str(path) in str(error.value), name
    assert "silent" in str(error.value)
    assert not (tmp_path / "out.mp4").exists()


def test_a_portrait_without_a_face_warns_and_generation_goes_on(inputs, tmp_path):
    with pytest.warns(GenerationWarning, match="no face found"):
        result = generate_video(make_model(), config(inputs, tmp_path, max_seconds=0.1, cfg={"scale": 1.0}),
                                progress=False)
    assert result.path.is_file()
