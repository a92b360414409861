"""dlib's face detectors on real photographs that pip packages ship (issue 20): scikit-image's
astronaut (one face), its cat and coffee cup (no human face); dlib's model files come from the
face-recognition-models package, found without importing it (memo_zoo.perception.dlib_models)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.perception import dlib_models
from memo_zoo.perception.configs import FaceOptions
from memo_zoo.perception.face_boxes import FaceLocator
from memo_zoo.perception.faces import DlibCnnDetector, DlibHogDetector, build_detector

pytest.importorskip("dlib")
data = pytest.importorskip("skimage.data")

# Hand-placed eye centres of the astronaut (talking_world.real_photo.LANDMARKS), 512 px photo.
ASTRONAUT_EYES = np.array([[203.0, 101.5], [246.0, 102.5]])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    w = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    h = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    return w * h / (aw * ah + bw * bh - w * h)


def holds_eyes(box: np.ndarray) -> bool:
    x, y, w, h = box
    return bool(np.all((ASTRONAUT_EYES[:, 0] > x) & (ASTRONAUT_EYES[:, 0] < x + w)
                       & (ASTRONAUT_EYES[:, 1] > y) & (ASTRONAUT_EYES[:, 1] < y + h)))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[..., :3])


@pytest.fixture(scope="module")
def cnn() -> DlibCnnDetector:
    return DlibCnnDetector(max_side=512)  # the photos' own size: the astronaut's face is ~95 px


def test_both_dlib_detectors_find_the_astronauts_face_in_the_same_place(astronaut, cnn):
    [cnn_box] = cnn(astronaut)
    assert holds_eyes(cnn_box)
    hog_boxes = DlibHogDetector()(astronaut)
    # At 512 px the HOG also fires on the suit's badge; the face is the box that holds the eyes.
    faces = [box for box in hog_boxes if holds_eyes(box)]
    assert len(faces) == 1
    assert iou(faces[0], cnn_box) > 0.5


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_no_human_face_in_a_cat_or_a_coffee_cup(name, cnn):
    image = np.ascontiguousarray(getattr(data, name)()[..., :3])
    assert len(DlibHogDetector()(image)) == 0
    assert len(cnn(image)) == 0


def head_and_shoulders(astronaut: np.ndarray, size: int) -> np.ndarray:
    """The astronaut's portrait crop (talking_world's photo tier: 180 px from (134, 14)) at ``size`` px."""
    return cv2.resize(astronaut[14:194, 134:314], (size, size), interpolation=cv2.INTER_AREA)


def test_cnn_boxes_are_in_the_frames_own_pixels(astronaut):
    # Shrunk from 512 to 448 px inside: the box comes back in the photo's pixels.
    [box] = DlibCnnDetector(max_side=448)(astronaut)
    assert holds_eyes(box) and 80 < box[2] < 120
    # A 128 px portrait is enlarged to 256 px (min_side) inside; the box is in its 128 px.
    [box] = DlibCnnDetector()(head_and_shoulders(astronaut, 128))
    assert holds_eyes((box / 128 * 180) + [134, 14, 0, 0]) and 40 < box[2] < 90


def test_best_picks_the_cnn_then_the_hog_then_lbp(monkeypatch):
    assert build_detector("best").kind == "dlib_cnn"
    monkeypatch.setattr(dlib_models, "available", lambda name: False)
    assert build_detector("best").kind == "dlib_hog"
    monkeypatch.setattr(dlib_models, "dlib_installed", lambda: False)
    assert build_detector("best").kind == "lbp"


def test_face_locator_with_best_reports_the_detector_it_ran(astronaut):
    # The metrics' videos are face crops: the face fills much of the frame, as here.
    locator = FaceLocator(FaceOptions(face_detector="best"))
    assert locator.detector_kind == "dlib_cnn"
    box = locator.box(head_and_shoulders(astronaut, 512)[None])
    assert box is not None and holds_eyes(box / 512 * 180 + [134, 14, 0, 0])
    assert FaceLocator(FaceOptions()).detector_kind == "none"


def test_unknown_detector_names_the_choices():
    with pytest.raises(MemoZooError, match="dlib_cnn, best"):
        build_detector("mtcnn")


def test_a_missing_model_file_names_the_file_and_the_pip_package(monkeypatch, tmp_path):
    with pytest.raises(MissingWeightsError, match="nowhere.dat"):
        dlib_models.model_path(dlib_models.CNN_DETECTOR, str(tmp_path / "nowhere.dat"))
    monkeypatch.setattr(dlib_models, "package_models_dir", lambda: tmp_path)
    with pytest.raises(MissingWeightsError, match="mmod_human_face_detector.dat.*face-recognition-models"):
        dlib_models.model_path(dlib_models.CNN_DETECTOR)
    monkeypatch.setattr(dlib_models, "package_models_dir", lambda: None)
    with pytest.raises(MissingWeightsError, match="pip install face-recognition-models"):
        DlibCnnDetector()


def test_a_file_of_the_wrong_kind_is_named(tmp_path):
    bogus = tmp_path / "bogus.dat"
    bogus.write_bytes(b"not a dlib model")
    with pytest.raises(MemoZooError, match="bogus.dat"):
        DlibCnnDetector(model=str(bogus))
