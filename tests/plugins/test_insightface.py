"""The ``insightface`` image encoder (released code's face condition, §10): SCRFD decoding and NMS,
the ArcFace alignment, the recogniser call and the whole encoder, on tiny ONNX models written here
with ``onnx.helper`` (the same input/output layouts as scrfd_10g_bnkps.onnx and glintr100.onnx)."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo_plugins.image_encoder.arcface import ArcFaceRecognizer, insightface_normalisation
from memo_zoo_plugins.image_encoder.face_align import (ARCFACE_TEMPLATE, align_face, arcface_template,
                                                       similarity_transform)
from memo_zoo_plugins.image_encoder.insightface import (InsightFaceConfig, InsightFaceEncoder,
                                                        NoFaceWarning, build)
from memo_zoo_plugins.image_encoder.scrfd import ScrfdDetector, anchor_centres, decode, nms

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE = 64  # the tiny detector's fixed input side
STRIDES = (8, 16, 32)
# The tiny detector's boxes and landmarks (in stride units, relative to the anchor centre) at the
# two stride-16 cells the tests light up; every other anchor predicts a small default box.
FACE_A = (1, 2)  # (row, col) of a white cell: higher score, smaller box
FACE_B = (2, 0)  # a tinted cell: lower score, larger box -> the "largest face"
BOX_A = (0.5, 0.25, 1.5, 1.75)
BOX_B = (0.75, 0.75, 2.0, 2.25)
POINTS = (0.25, 0.5, 0.75, 0.5, 0.5, 0.75, 0.3, 1.0, 0.7, 1.0)
POINTS_B = (0.1, 0.4, 1.1, 0.45, 0.6, 0.9, 0.2, 1.4, 1.0, 1.45)
EMBED = 8


def _save(graph, path, opset=17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _rows(stride: int) -> int:
    return (SIDE // stride) ** 2 * 2


def _table(stride: int, width: int, default: tuple[float, ...], faces: dict) -> np.ndarray:
    table = np.tile(np.asarray(default, np.float32), (_rows(stride), 1))
    for (row, col), values in faces.items():
        index = (row * (SIDE // stride) + col) * 2
        table[index:index + 2] = values
    return table


def write_detector(path):
    """A 9-output SCRFD (strides 8/16/32, 2 anchors, landmarks) whose stride-16 score is the sigmoid of
    10 x the cell's mean normalised brightness; strides 8 and 32 never fire."""
    nodes, inits, outputs = [], [], {"score": [], "bbox": [], "kps": []}
    for stride in STRIDES:
        s = str(stride)
        bias = 0.0 if stride == 16 else -1000.0
        inits += [numpy_helper.from_array(np.array(10.0, np.float32), f"gain{s}"),
                  numpy_helper.from_array(np.array(bias, np.float32), f"bias{s}"),
                  numpy_helper.from_array(np.array([-1, 1], np.int64), f"shape{s}")]
        nodes += [
            helper.make_node("AveragePool", ["input.1"], [f"pool{s}"], kernel_shape=[stride, stride],
                             strides=[stride, stride]),
            helper.make_node("ReduceMean", [f"pool{s}"], [f"mean{s}"], axes=[1], keepdims=1),
            helper.make_node("Mul", [f"mean{s}", f"gain{s}"], [f"scaled{s}"]),
            helper.make_node("Add", [f"scaled{s}", f"bias{s}"], [f"logit{s}"]),
            helper.make_node("Sigmoid", [f"logit{s}"], [f"prob{s}"]),
            helper.make_node("Concat", [f"prob{s}", f"prob{s}"], [f"pair{s}"], axis=1),
            helper.make_node("Transpose", [f"pair{s}"], [f"nhwc{s}"], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [f"nhwc{s}", f"shape{s}"], [f"score_{s}"]),
        ]
        faces_box = {FACE_A: BOX_A, FACE_B: BOX_B} if stride == 16 else {}
        faces_kps = {FACE_A: POINTS, FACE_B: POINTS_B} if stride == 16 else {}
        inits += [numpy_helper.from_array(_table(stride, 4, (0.5,) * 4, faces_box), f"bboxc{s}"),
                  numpy_helper.from_array(_table(stride, 10, POINTS, faces_kps), f"kpsc{s}")]
        nodes += [helper.make_node("Identity", [f"bboxc{s}"], [f"bbox_{s}"]),
                  helper.make_node("Identity", [f"kpsc{s}"], [f"kps_{s}"])]
        outputs["score"].append(helper.make_tensor_value_info(f"score_{s}", TensorProto.FLOAT, [_rows(stride), 1]))
        outputs["bbox"].append(helper.make_tensor_value_info(f"bbox_{s}", TensorProto.FLOAT, [_rows(stride), 4]))
        outputs["kps"].append(helper.make_tensor_value_info(f"kps_{s}", TensorProto.FLOAT, [_rows(stride), 10]))
    graph = helper.make_graph(nodes, "tiny_scrfd",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
                              outputs["score"] + outputs["bbox"] + outputs["kps"], inits)
    return _save(graph, path)


RECOGNISER_WEIGHT = np.random.default_rng(0).standard_normal((3, EMBED)).astype(np.float32)


def write_recognizer(path, mxnet_style: bool = False):
    """(batch, 3, 112, 112) -> (batch, EMBED): channel means times a fixed matrix. ``mxnet_style``
    names its first nodes as an MXNet conversion does (_minus / _mul), with identity arithmetic."""
    inits = [numpy_helper.from_array(RECOGNISER_WEIGHT, "fc_weight")]
    nodes = []
    source = "data"
    if mxnet_style:
        inits += [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                  numpy_helper.from_array(np.array(1.0, np.float32), "one")]
        nodes += [helper.make_node("Sub", ["data", "zero"], ["centred"], name="_minus0"),
                  helper.make_node("Mul", ["centred", "one"], ["scaled"], name="_mul0")]
        source = "scaled"
    nodes += [helper.make_node("GlobalAveragePool", [source], ["pooled"], name="pool"),
              helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
              helper.make_node("MatMul", ["flat", "fc_weight"], ["fc1"], name="fc")]
    graph = helper.make_graph(nodes, "tiny_arcface",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["None", EMBED])], inits)
    return _save(graph, path)


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "misc" / "face_analysis" / "models"
    folder.mkdir(parents=True)
    write_detector(folder / "scrfd_10g_bnkps.onnx")
    write_recognizer(folder / "glintr100.onnx")
    return folder


def portrait(scale: int = 2) -> np.ndarray:
    """A dark (SIDE*scale)^2 RGB image with face A white and face B tinted, on the stride-16 grid."""
    image = np.full((SIDE * scale, SIDE * scale, 3), 10, np.uint8)
    cell = 16 * scale
    for (row, col), colour in ((FACE_A, (255, 255, 255)), (FACE_B, (250, 200, 160))):
        image[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] = colour
    return image


def expected_face(cell, box, points, scale):
    """(box, landmarks) in image pixels of a stride-16 cell's prediction, image = input x scale."""
    cx, cy = cell[1] * 16.0, cell[0] * 16.0
    l, t, r, b = (16 * v for v in box)
    face_box = np.array([cx - l, cy - t, cx + r, cy + b]) * scale
    landmarks = (np.array([cx, cy]) + 16 * np.asarray(points).reshape(5, 2)) * scale
    return face_box, landmarks


# ---------------------------------------------------------------------------------- decoding, NMS


def test_anchor_centres_are_row_major_pixel_corners_repeated_per_anchor():
    centres = anchor_centres(2, 3, 8, 2)
    assert centres.shape == (12, 2)
    np.testing.assert_array_equal(centres[:6], [[0, 0], [0, 0], [8, 0], [8, 0], [16, 0], [16, 0]])
    np.testing.assert_array_equal(centres[6:8], [[0, 8], [0, 8]])


def test_decode_hand_made_anchor_case():
    # Input 32x32: stride 8 -> 4x4x2 rows, 16 -> 2x2x2, 32 -> 1x1x2. One anchor over threshold per
    # stride-8 map (row (1, 2), second anchor) and one at stride 32.
    scores = [np.zeros((32, 1), np.float32), np.zeros((8, 1), np.float32), np.zeros((2, 1), np.float32)]
    boxes = [np.ones((32, 4), np.float32), np.ones((8, 4), np.float32), np.ones((2, 4), np.float32)]
    points = [np.zeros((32, 10), np.float32), np.zeros((8, 10), np.float32), np.zeros((2, 10), np.float32)]
    hit = (1 * 4 + 2) * 2 + 1
    scores[0][hit] = 0.9
    boxes[0][hit] = [0.5, 1.0, 1.5, 2.0]
    points[0][hit] = np.arange(10) / 10
    scores[2][0] = 0.7
    out_scores, out_boxes, out_points = decode(scores + boxes + points, 32, 32, STRIDES, 2, 0.5)
    np.testing.assert_allclose(out_scores, [0.9, 0.7])
    # anchor centre (x 16, y 8); distances x stride 8
    np.testing.assert_allclose(out_boxes[0], [16 - 4, 8 - 8, 16 + 12, 8 + 16])
    np.testing.assert_allclose(out_points[0], np.array([16, 8]) + 8 * (np.arange(10) / 10).reshape(5, 2), rtol=1e-6)
    np.testing.assert_allclose(out_boxes[1], [-32, -32, 32, 32])  # stride 32's anchor at (0, 0)
    # batched outputs (1, rows, k) decode the same
    batched = decode([o[None] for o in scores + boxes + points], 32, 32, STRIDES, 2, 0.5)
    np.testing.assert_allclose(batched[1], out_boxes)


def test_decode_refuses_rows_that_do_not_fit_the_grid():
    outputs = [np.zeros((10, 1), np.float32)] * 3 + [np.zeros((10, 4), np.float32)] * 3
    with pytest.raises(MemoZooError, match="stride 8"):
        decode(outputs, 32, 32, STRIDES, 2, 0.5)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 4]], np.float32)
    scores = np.array([0.9, 0.8, 0.85, 0.95], np.float32)
    # IoU(0, 1) = 100/142 > 0.4: dropped; IoU(3, 0) = 55/121 > 0.4: 0 dropped by 3
    assert nms(boxes, scores, 0.4) == [3, 2, 1]
    assert nms(boxes, scores, 0.8) == [3, 0, 2, 1]
    assert nms(boxes[:0], scores[:0], 0.4) == []


# ---------------------------------------------------------------------------------- alignment


def test_similarity_transform_recovers_a_known_transform_exactly():
    angle, scale, shift = np.deg2rad(23.0), 1.7, np.array([-12.5, 40.25])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = ARCFACE_TEMPLATE.astype(np.float64)
    target = source @ (scale * rotation).T + shift
    matrix = similarity_transform(source, target)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-10)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def _skimage_similarity(source, target):
    from skimage.transform import SimilarityTransform as transform
    if hasattr(transform, "from_estimate"):  # scikit-image >= 0.26
        return transform.from_estimate(source, target).params[:2]
    fitted = transform()
    fitted.estimate(source, target)
    return fitted.params[:2]


def test_similarity_transform_matches_scikit_image_on_noisy_points():
    rng = np.random.default_rng(3)
    template = ARCFACE_TEMPLATE.astype(np.float64)
    source = template * 2.3 + rng.normal(0, 3, (5, 2)) + 50
    np.testing.assert_allclose(similarity_transform(source, template), _skimage_similarity(source, template),
                               atol=1e-9)
    mirrored = source * np.array([-1, 1])  # a reflection is never fitted: still a rotation
    matrix = similarity_transform(mirrored, template)
    np.testing.assert_allclose(matrix, _skimage_similarity(mirrored, template), atol=1e-9)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_align_face_warps_landmarks_onto_the_template():
    image = np.random.default_rng(1).integers(0, 255, (160, 200, 3), dtype=np.uint8)
    # landmarks already on the template: the crop is the top-left 112x112 of the image
    np.testing.assert_array_equal(align_face(image, ARCFACE_TEMPLATE, 112), image[:112, :112])
    # template shifted by (30, 20): the crop starts there
    np.testing.assert_array_equal(align_face(image, ARCFACE_TEMPLATE + [30, 20], 112), image[20:132, 30:142])
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE * 2)
    np.testing.assert_allclose(arcface_template(128)[:, 0], ARCFACE_TEMPLATE[:, 0] * 128 / 128 + 8)
    with pytest.raises(MemoZooError, match="multiple of 112 nor of 128"):
        arcface_template(100)


# ---------------------------------------------------------------------------------- the ONNX models


def test_detector_finds_the_hand_made_faces(models):
    detector = ScrfdDetector(models / "scrfd_10g_bnkps.onnx", det_size=640)
    assert detector.input_size == (SIDE, SIDE)  # a fixed-size model keeps its size, as in insightface
    faces = detector.detect(portrait(scale=2))
    assert len(faces) == 2  # each cell's two anchors collapse to one box
    box_a, points_a = expected_face(FACE_A, BOX_A, POINTS, 2)
    box_b, points_b = expected_face(FACE_B, BOX_B, POINTS_B, 2)
    np.testing.assert_allclose(faces.boxes, [box_a, box_b], atol=1e-4)  # white cell scores higher
    np.testing.assert_allclose(faces.landmarks, [points_a, points_b], atol=1e-4)
    assert faces.scores[0] > faces.scores[1] > 0.99
    assert faces.largest() == 1


def test_recognizer_feeds_the_normalised_aligned_crop(models, tmp_path):
    recognizer = ArcFaceRecognizer(models / "glintr100.onnx")
    assert (recognizer.size, recognizer.embed_dim, recognizer.mean, recognizer.std) == (112, EMBED, 127.5, 127.5)
    crop = np.random.default_rng(2).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    expected = ((crop.astype(np.float64) - 127.5) / 127.5).mean(axis=(0, 1)) @ RECOGNISER_WEIGHT
    np.testing.assert_allclose(recognizer.embed(crop), expected, rtol=1e-5, atol=1e-6)
    # insightface's rule: an MXNet conversion (Sub / Mul among the first nodes) is fed raw pixels
    assert insightface_normalisation(write_recognizer(tmp_path / "mx.onnx", mxnet_style=True)) == (0.0, 1.0)
    raw = ArcFaceRecognizer(tmp_path / "mx.onnx")
    np.testing.assert_allclose(raw.embed(crop), crop.astype(np.float64).mean(axis=(0, 1)) @ RECOGNISER_WEIGHT,
                               rtol=1e-5)
    assert ArcFaceRecognizer(tmp_path / "mx.onnx", mean=127.5, std=127.5).mean == 127.5


def test_recognizer_refuses_a_detector(models):
    with pytest.raises(MemoZooError, match="Is this the recogniser"):
        ArcFaceRecognizer(models / "scrfd_10g_bnkps.onnx")


# ---------------------------------------------------------------------------------- the encoder


def _images(*pictures: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 127.5 - 1 for p in pictures])


def test_encoder_embeds_the_largest_face_end_to_end(models, tmp_path):
    release = tmp_path  # a release folder: misc/face_analysis/models inside
    encoder = build(InsightFaceConfig(weights=str(release), device="cpu"))
    assert encoder.embed_dim == EMBED and not list(encoder.parameters())
    picture = portrait(scale=2)
    _, landmarks_b = expected_face(FACE_B, BOX_B, POINTS_B, 2)
    crop = align_face(picture, landmarks_b.astype(np.float32), 112)
    expected = ((crop.astype(np.float64) - 127.5) / 127.5).mean(axis=(0, 1)) @ RECOGNISER_WEIGHT
    out = encoder.encode(_images(picture, picture))
    assert out.shape == (2, EMBED) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[0], out[1])
    # normalize: the same direction, unit length
    normed = InsightFaceEncoder(InsightFaceConfig(weights=str(models), normalize=True, device="cpu"))
    unit = normed.encode(_images(picture))[0]
    torch.testing.assert_close(unit, out[0] / out[0].norm(), rtol=1e-5, atol=1e-6)


def test_encoder_gives_zeros_and_warns_without_a_face(models):
    encoder = InsightFaceEncoder(InsightFaceConfig(weights=str(models), device="cpu"))
    dark = np.full((SIDE, SIDE, 3), 10, np.uint8)
    with pytest.warns(NoFaceWarning, match="image 1 of the batch.*zero vector"):
        out = encoder.encode(_images(portrait(scale=1), dark))
    assert out[0].abs().sum() > 0
    torch.testing.assert_close(out[1], torch.zeros(EMBED))


def test_encoder_finds_models_by_name_and_through_a_face_analysis_root(models, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(models.parent.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build(InsightFaceConfig(weights="face_analysis", device="cpu")).embed_dim == EMBED  # its models/


def test_missing_model_file_names_it_and_the_folder(models):
    with pytest.raises(MissingWeightsError) as error:
        build(InsightFaceConfig(weights=str(models), recognizer="w600k_r50.onnx", device="cpu"))
    message = str(error.value)
    assert "w600k_r50.onnx" in message and str(models) in message and "image_encoder.recognizer" in message
    assert "glintr100.onnx" in message  # what is there
    with pytest.raises(MissingWeightsError, match="nowhere"):
        build(InsightFaceConfig(weights=str(models.parent / "nowhere"), device="cpu"))


def test_a_damaged_model_file_is_named(models):
    (models / "glintr100.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(MemoZooError, match="glintr100.onnx cannot be opened by ONNX Runtime"):
        build(InsightFaceConfig(weights=str(models), device="cpu"))


def test_config_is_strict():
    with pytest.raises(ValueError):
        InsightFaceConfig(weights="x", det_sise=640)
    with pytest.raises(ValueError):
        InsightFaceConfig(weights="x", det_size=100)  # not a multiple of 32
    assert InsightFaceConfig(weights="x").detector == "scrfd_10g_bnkps.onnx"


def test_encoder_follows_the_image_encoder_protocol(models):
    from memo_zoo.slots.image_encoder import ImageEncoder

    encoder = InsightFaceEncoder(InsightFaceConfig(weights=str(models), device="cpu"))
    assert isinstance(encoder, ImageEncoder)
    noise = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoFaceWarning)  # whether noise holds a "face" is the tiny detector's call
        out = encoder.encode(noise)
    assert out.shape == (2, encoder.embed_dim) and torch.isfinite(out).all()
    assert encoder.train().detector is not None  # no parameters, nothing to train: train() is harmless


def test_providers_fall_back_to_the_cpu():
    import onnxruntime

    from memo_zoo.perception.onnx_models import execution_providers

    assert execution_providers("cpu") == ["CPUExecutionProvider"]
    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert execution_providers("cuda")[0] == ("CUDAExecutionProvider" if cuda else "CPUExecutionProvider")
    assert execution_providers("cuda")[-1] == "CPUExecutionProvider"


def test_hub_id_resolves_to_the_cached_release_misc_folder(tmp_path, monkeypatch):
    # huggingface_hub's cache layout: models--owner--name/snapshots/<sha>/... + refs/main
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--memoavatar--memo"
    snapshot = repo / "snapshots" / sha
    (snapshot / "image_proj").mkdir(parents=True)  # a released part: what makes it a release folder
    models = snapshot / "misc" / "face_analysis" / "models"
    models.mkdir(parents=True)
    write_detector(models / "scrfd_10g_bnkps.onnx")
    write_recognizer(models / "glintr100.onnx")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    for name in ("HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)  # no local folder named memoavatar/memo
    assert build(InsightFaceConfig(weights="memoavatar/memo", device="cpu")).embed_dim == EMBED
    with pytest.raises(MissingWeightsError, match="someone/memo.*not in the local Hugging Face cache"):
        build(InsightFaceConfig(weights="someone/memo", device="cpu"))
    import shutil

    shutil.rmtree(snapshot / "misc")
    with pytest.raises(MissingWeightsError, match="has no misc/face_analysis/models"):
        build(InsightFaceConfig(weights="memoavatar/memo", device="cpu"))
