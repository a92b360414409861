"""Identity with real pretrained weights offline (issue 20): dlib's 128-d face embedding tells one
person from another on real photographs (scikit-image's astronaut, matplotlib's Grace Hopper),
the ``identity`` metric uses it without ArcFace weights and says so, and the ArcFace and E-FID
paths align faces on request."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from memo_zoo.eval.protocol import VideoSample
from memo_zoo.perception.face_embedding import DlibFaceEmbedder
from memo_zoo.perception.faces import DlibHogDetector
from memo_zoo_eval.metrics.configs import EFidConfig, IdentityConfig
from memo_zoo_eval.metrics.efid import EFidMetric
from memo_zoo_eval.metrics.identity import IdentityMetric
from memo_zoo_plugins.datasets.talking_world.face import FaceState

pytest.importorskip("dlib")
data = pytest.importorskip("skimage.data")
real_photo = pytest.importorskip("memo_zoo_plugins.datasets.talking_world.real_photo")
cbook = pytest.importorskip("matplotlib.cbook")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[..., :3])


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    """Grace Hopper's portrait, shipped with matplotlib's sample data (600 x 512)."""
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as file:
        return np.asarray(Image.open(file).convert("RGB"))


@pytest.fixture(scope="module")
def embedder() -> DlibFaceEmbedder:
    return DlibFaceEmbedder()


def embed(embedder: DlibFaceEmbedder, image: np.ndarray) -> np.ndarray:
    boxes = DlibHogDetector()(image)
    box = max(boxes, key=lambda b: b[2])  # the astronaut's badge is a small false face
    return embedder(image[None], box)[0]


def variants(image: np.ndarray) -> list[np.ndarray]:
    """The same photo mirrored, turned 8 degrees and shrunk to 70%."""
    height, width = image.shape[:2]
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((width / 2, height / 2), 8, 1.0), (width, height),
                            borderMode=cv2.BORDER_REFLECT)
    small = cv2.resize(image, (int(width * 0.7), int(height * 0.7)), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(image[:, ::-1]), turned, small]


def test_one_person_scores_above_two_people(embedder, astronaut, hopper):
    anchor, other = embed(embedder, astronaut), embed(embedder, hopper)
    assert anchor.shape == (128,) and np.isclose(np.linalg.norm(anchor), 1.0)
    different = float(anchor @ other)
    for image in variants(astronaut):
        same = float(anchor @ embed(embedder, image))
        assert same > 0.97 and same > different + 0.05, (same, different)  # measured: >= 0.98 vs 0.88
    for image in variants(hopper):
        assert float(other @ embed(embedder, image)) > different + 0.05


def test_the_photo_tier_keeps_its_identity_while_it_talks(embedder, hopper):
    frames = np.stack([real_photo.render_photo(FaceState(mouth_open=v, emotion=e), 256)
                       for v, e in ((0.0, "neutral"), (0.7, "neutral"), (0.4, "happy"))])
    [box] = DlibHogDetector()(frames[0])
    vectors = embedder(frames, box)
    other = embed(embedder, cv2.resize(hopper, (256, 300)))
    assert (vectors @ vectors.T).min() > (vectors @ other).max() + 0.05


def identity_video(name: str, frames: np.ndarray, reference: np.ndarray) -> VideoSample:
    return VideoSample(id=name, frames=frames, fps=25.0, reference_image=reference)


def test_identity_metric_without_weights_uses_dlib_and_says_so(astronaut, hopper):
    portrait = real_photo.render_photo(FaceState(), 256)
    talking = np.stack([real_photo.render_photo(FaceState(mouth_open=v), 256) for v in (0.2, 0.6, 0.9, 0.3)])
    stranger = np.stack([cv2.resize(hopper[60:460, 56:456], (256, 256), interpolation=cv2.INTER_AREA)] * 2)
    metric = IdentityMetric(IdentityConfig(face_detector="dlib_hog", time_bins=2))
    assert metric.embedding == "dlib_resnet_128"
    metric.prepare()
    metric.update(identity_video("same", talking, portrait))
    metric.update(identity_video("other", stranger, portrait))
    result = metric.compute()
    assert result.per_video["same"]["identity"] > 0.97
    assert result.per_video["same"]["identity"] > result.per_video["other"]["identity"] + 0.05
    assert result.summary["identity_dlib_embedding"] == 1.0
    assert "identity_dlib_embedding" not in result.per_video["same"]


@pytest.fixture()
def scripted_net(tmp_path) -> str:
    """A stand-in ArcFace: a fixed random projection of the 112 px crop to 512-d (TorchScript)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Flatten(), torch.nn.Linear(3 * 14 * 14, 512))
    path = tmp_path / "arcface.pt"
    torch.jit.save(torch.jit.script(net.eval()), str(path))
    return str(path)


def test_arcface_weights_are_used_when_given_and_can_align(scripted_net):
    portrait = real_photo.render_photo(FaceState(), 256)
    turned = cv2.warpAffine(portrait, cv2.getRotationMatrix2D((128, 128), 12, 1.0), (256, 256),
                            borderMode=cv2.BORDER_REFLECT)
    figures = {}
    for align in (False, True):
        metric = IdentityMetric(IdentityConfig(weights=scripted_net, align=align, device="cpu"))
        assert metric.embedding == "arcface"
        metric.prepare()
        assert metric.dlib_embedder is None and (metric.aligner is not None) == align
        metric.update(identity_video("turned", turned[None], portrait))
        result = metric.compute()
        assert result.summary["identity_dlib_embedding"] == 0.0
        figures[align] = result.per_video["turned"]["identity"]
    # aligned, the head roll no longer reaches the network: the crops agree more
    assert figures[True] > figures[False]


def test_efid_aligns_faces_to_the_extractors_size():
    seen = []

    def extractor(faces: np.ndarray) -> np.ndarray:
        seen.append(faces)
        return faces.reshape(len(faces), -1)[:, :6].astype(np.float64)

    frames = np.stack([real_photo.render_photo(FaceState(mouth_open=v), 256) for v in (0.0, 0.5, 0.9)])
    metric = EFidMetric(EFidConfig(extractor="unused.module:factory", align=True, input_size=96), extractor)
    metric._load()
    coefficients = metric.features(VideoSample(id="clip", frames=frames, fps=25.0))
    assert coefficients.shape == (3, 6) and seen[0].shape == (3, 96, 96, 3) and seen[0].dtype == np.uint8
    unaligned = EFidMetric(EFidConfig(extractor="unused.module:factory"), extractor)
    unaligned._load()
    unaligned.features(VideoSample(id="clip", frames=frames, fps=25.0))
    assert seen[1].shape == (3, 256, 256, 3)
