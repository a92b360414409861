"""Generation's "no face found in the portrait" warning (issue 16): it must stay quiet on the
embedded default's own portraits (talking_world's cartoon people) and speak for an image with no
face. The check uses dlib's HOG detector at a lenient threshold (memo_zoo.perception.faces)."""

from __future__ import annotations

import builtins
import warnings

import numpy as np
import pytest
from PIL import Image

from memo_zoo.generate.inputs import _face_found, load_portrait
from memo_zoo.generate.warning import GenerationWarning
from memo_zoo.perception.faces import DlibHogDetector, LbpDetector, find_faces, portrait_detector
from memo_zoo_plugins.datasets.talking_world.face import FaceState, render
from memo_zoo_plugins.datasets.talking_world.identity import FaceIdentity


def portrait(seed: int, size: int = 64, state: FaceState | None = None) -> np.ndarray:
    return render(FaceIdentity.from_seed(seed), state or FaceState(), size)


def test_talking_world_portraits_do_not_warn(tmp_path):
    missed = [seed for seed in range(20) if not _face_found(portrait(seed))]
    assert len(missed) <= 1, missed  # benchmarks/face_detectors.py: 49 of 50 at rest
    path = tmp_path / "person.png"
    Image.fromarray(portrait(0)).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenerationWarning)
        assert load_portrait(path, 64).shape == (64, 64, 3)


@pytest.mark.parametrize("kind", ["noise", "flat"])
def test_an_image_without_a_face_still_warns(tmp_path, kind):
    rng = np.random.default_rng(3)
    image = ((rng.random((96, 96, 3)) * 255).astype(np.uint8) if kind == "noise"
             else np.full((96, 96, 3), (120, 160, 90), np.uint8))
    path = tmp_path / f"{kind}.png"
    Image.fromarray(image).save(path)
    with pytest.warns(GenerationWarning, match="no face found"):
        load_portrait(path, 64)


def test_hog_boxes_are_in_the_frames_own_pixels():
    frame = portrait(1)
    [box] = find_faces(DlibHogDetector(), frame)
    x, y, w, h = box
    # The face sits in the middle of a 64 px portrait: the box is there, at the frame's scale.
    assert 0 <= x < 32 < x + w <= 64 and 0 <= y < 32 < y + h <= 64 and 16 < w < 64


def test_without_dlib_the_check_falls_back_to_the_lbp_cascade(monkeypatch):
    real_import = builtins.__import__

    def no_dlib(name, *args, **kwargs):
        if name == "dlib":
            raise ImportError("no dlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dlib)
    assert isinstance(portrait_detector(), LbpDetector)
