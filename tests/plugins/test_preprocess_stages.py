"""The built-in ``preprocess`` stages of spec §7 on small synthetic clips, and the ``preprocess`` task.

Faces come from scikit-image's bundled astronaut photograph (a real face, needed by the cascade
detectors); nothing is downloaded.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memo_zoo.data.clip import ClipRecord, iter_files
from memo_zoo.data.media import probe, read_audio, read_frames, write_video
from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.manager import load_registry
from memo_zoo.perception import faces
from memo_zoo_plugins.preprocess import face_crop, lip_sync, plugin, quality, resize, scene_split
from skimage import data as skimage_data

FPS = 25.0
RATE = 16_000


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A 96 x 96 RGB tile holding one frontal face."""
    photo = skimage_data.astronaut()
    return cv2.resize(photo[20:260, 100:340], (96, 96), interpolation=cv2.INTER_AREA)


def on_canvas(tile: np.ndarray, size=(128, 128), at=(16, 16)) -> np.ndarray:
    canvas = np.full((*size, 3), 90, dtype=np.uint8)
    y, x = at
    h, w = min(tile.shape[0], size[0] - y), min(tile.shape[1], size[1] - x)
    canvas[y:y + h, x:x + w] = tile[:h, :w]
    return canvas


def clip_of(path: Path, frames: np.ndarray, audio: np.ndarray | None = None, **labels) -> ClipRecord:
    if audio is None:
        audio = np.zeros(int(len(frames) / FPS * RATE), np.float32)
    write_video(path, frames, FPS, audio)
    return ClipRecord(path.stem, path, speaker=labels.get("speaker", "spk"), emotion=labels.get("emotion", "sad"))


# ---- registration --------------------------------------------------------------------------------


def test_plugin_registers_the_seven_stages_with_documented_strict_configs():
    registry = load_registry(disabled=("builtin_preprocess",), extra_plugins=[("pp", plugin)])
    assert registry.kinds("preprocess") == ["face_crop", "lip_sync_filter", "quality_filter", "resize",
                                            "scene_split", "vocal_separation", "voice_activity"]
    for entry in registry.components["preprocess"].values():
        assert all(field.description for field in entry.spec.config.model_fields.values())
        with pytest.raises(ValidationError):
            entry.spec.config(no_such_option=1)


# ---- scene_split ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory) -> ClipRecord:
    """2 s: 1 s of a red texture, then a hard cut to 1 s of a blue one; a 440 Hz tone throughout."""
    rng = np.random.default_rng(0)
    frames = np.zeros((50, 64, 64, 3), np.uint8)
    frames[:25] = (200, 40, 40)
    frames[25:] = (30, 60, 210)
    # One fixed texture per scene: per-frame random noise on saturated red makes consecutive frames
    # differ by ~25 in PySceneDetect's HSV score, next to its threshold of 27, so detection would
    # hinge on how the encoder happens to keep the noise.
    texture = rng.integers(-12, 12, (2, 1, 64, 64, 3))
    frames = np.clip(frames + np.repeat(texture, 25, axis=1).reshape(frames.shape), 0, 255).astype(np.uint8)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * RATE) / RATE)).astype(np.float32)
    return clip_of(tmp_path_factory.mktemp("cut") / "cut.mp4", frames, tone, speaker="alice", emotion="angry")


def test_scene_split_cuts_at_the_scene_change_with_the_audio(cut_clip, tmp_path):
    stage = scene_split.build(scene_split.SceneSplitConfig(min_seconds=0.5))
    result = stage.process(cut_clip, tmp_path)
    assert result.kept and [c.clip_id for c in result.clips] == ["cut#000", "cut#001"]
    reds = []
    for piece in result.clips:
        frames, _ = read_frames(piece.video)
        assert len(frames) == 25 and piece.frame_count == 25
        assert abs(len(read_audio(piece.video)) - RATE) < 0.05 * RATE  # its own second of audio
        assert (piece.speaker, piece.emotion) == ("alice", "angry")
        reds.append(frames[..., 0].mean() > frames[..., 2].mean())
    assert reds == [True, False]


def test_scene_split_cuts_long_scenes_and_drops_short_pieces(cut_clip, tmp_path):
    pieces = scene_split.build(scene_split.SceneSplitConfig(max_seconds=0.4, min_seconds=0.3)).process(
        cut_clip, tmp_path / "a")
    assert [c.frame_count for c in pieces.clips] == [8, 9, 8, 8, 9, 8]  # each 1 s scene in 3 pieces <= 0.4 s
    dropped = scene_split.build(scene_split.SceneSplitConfig(min_seconds=1.5)).process(cut_clip, tmp_path / "b")
    assert not dropped.kept and "no piece of at least 1.5 s" in dropped.reason and dropped.value == 1.0
    assert scene_split.split_span(0, 10, 4) == [(0, 3), (3, 7), (7, 10)]
    with pytest.raises(ValidationError, match="longer than max_seconds"):
        scene_split.SceneSplitConfig(min_seconds=40)


# ---- face_crop -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cropper():
    # dlib's HOG finds faces from ~40 px: the two 96 px tiles side by side hold ~45 px faces, under
    # the ~80 px that `best` (dlib's CNN at 320 px) needs; these tests are about the drop rules.
    return face_crop.build(face_crop.FaceCropConfig(detector="dlib_hog", size=64, sample_every=2))


def test_face_crop_keeps_one_face_and_crops_a_fixed_square_around_it(cropper, face, tmp_path):
    frames = np.stack([on_canvas(face)] * 6)
    clip = clip_of(tmp_path / "one.mp4", frames)
    result = cropper.process(clip, tmp_path / "out")
    assert result.kept and result.value == 1.0
    out, fps = read_frames(result.clips[0].video)
    assert out.shape == (6, 64, 64, 3) and fps == FPS
    assert result.clips[0].speaker == "spk"
    # The crop holds the face: the detector finds it again, filling most of the crop.
    boxes = cropper.faces(out[0])
    assert len(boxes) == 1 and boxes[0, 2] > 0.6 * 64


def test_face_crop_drops_two_faces_no_face_and_a_face_cut_by_the_border(cropper, face, tmp_path):
    two = np.stack([np.concatenate([on_canvas(face)] * 2, axis=1)] * 6)
    blank = np.full((6, 128, 128, 3), 128, np.uint8)
    cut = np.stack([on_canvas(face[:, 30:], at=(16, 0))] * 6)
    reasons = {}
    for name, frames in {"two": two, "blank": blank, "cut": cut}.items():
        result = cropper.process(clip_of(tmp_path / f"{name}.mp4", frames), tmp_path / "out")
        assert not result.kept
        reasons[name] = result.reason
    assert reasons["two"].startswith("2 faces in 3/3 sampled frames")
    assert reasons["blank"] == "no face in 3/3 sampled frames"
    assert reasons["cut"].startswith("partial face")


class _Scripted:
    """A detector that returns given boxes (x, y, w, h) per call, in order."""

    kind = "scripted"

    def __init__(self, boxes):
        self.boxes = list(boxes)

    def __call__(self, frame):
        return np.asarray(self.boxes.pop(0), dtype=np.float64).reshape(-1, 4)


def test_face_crop_tracks_the_face_so_a_stray_box_is_not_a_second_person(tmp_path):
    """One face throughout; the detector adds a false box in one sampled frame. Pooling boxes
    per frame would count 2 faces there; tracking sees a one-sample track and ignores it."""
    frames = np.full((10, 128, 128, 3), 90, np.uint8)
    face = [30, 30, 50, 50]
    boxes = [[face]] * 5
    boxes[2] = [face, [90, 90, 30, 30]]
    stage = face_crop.FaceCrop(face_crop.FaceCropConfig(size=None, sample_every=2, max_multi_fraction=0.1,
                                                        detect_size=128), _Scripted(boxes))
    result = stage.process(clip_of(tmp_path / "stray.mp4", frames), tmp_path / "out")
    assert result.kept, result.reason
    assert "tracked in 5/5 sampled frames" in result.reason
    # the same false box in every sampled frame is a second face that lasts: dropped
    lasting = face_crop.FaceCrop(face_crop.FaceCropConfig(size=None, sample_every=2, detect_size=128),
                                 _Scripted([[face, [90, 90, 30, 30]]] * 5))
    dropped = lasting.process(clip_of(tmp_path / "two.mp4", frames), tmp_path / "out2")
    assert not dropped.kept and dropped.reason == "2 faces in 5/5 sampled frames"


def test_face_crop_follow_keeps_a_moving_head_centred_where_fixed_does_not(face, tmp_path):
    """The astronaut's face pans 40 px across a 192 px frame; with crop: follow the face centre
    stays within a few pixels of the crop centre, with crop: fixed it moves with the head."""
    count = 25
    shifts = np.linspace(0, 40, count).round().astype(int)
    frames = np.stack([on_canvas(face, size=(160, 192), at=(32, 28 + int(d))) for d in shifts])
    clip = clip_of(tmp_path / "pan.mp4", frames)
    offsets = {}
    for mode in ("fixed", "follow"):
        config = face_crop.FaceCropConfig(detector="dlib_hog", size=None, sample_every=2, crop=mode,
                                          smooth_seconds=0.2, border_margin=0.0, scale=1.8)
        stage = face_crop.build(config)
        result = stage.process(clip, tmp_path / mode)
        assert result.kept, result.reason
        out, _ = read_frames(result.clips[0].video)
        centres = []
        for k in (4, 12, 20):  # away from the ends, where the moving mean holds the first position
            boxes = stage.faces(out[k])
            assert len(boxes) == 1
            x, y, w, h = boxes[0]
            centres.append(x + w / 2 - out.shape[2] / 2)
        offsets[mode] = np.abs(centres)
    assert offsets["follow"].max() < 4
    assert offsets["fixed"].max() > 10


def test_face_crop_best_detector_is_dlib_cnn_with_the_model_files():
    from memo_zoo.perception import dlib_models

    stage = face_crop.build(face_crop.FaceCropConfig())
    expected = "dlib_cnn" if dlib_models.available(dlib_models.CNN_DETECTOR) else "dlib_hog"
    assert stage.detector.kind == expected


def test_square_crop_stays_inside_the_frame():
    assert face_crop.square_crop(np.array([40, 40, 20, 20]), 1.1, 100, 100) == (39, 39, 22)
    assert face_crop.square_crop(np.array([0, 0, 20, 30]), 1.1, 100, 100) == (0, 0, 32)
    assert face_crop.square_crop(np.array([10, 10, 90, 90]), 1.1, 80, 120) == (15, 0, 80)


def test_yunet_without_its_model_names_the_missing_file(tmp_path):
    missing = tmp_path / "face_detection_yunet.onnx"
    with pytest.raises(MissingWeightsError, match="face_detection_yunet.onnx"):
        face_crop.build(face_crop.FaceCropConfig(detector="yunet", model=str(missing)))
    with pytest.raises(ValidationError, match="needs model"):
        face_crop.FaceCropConfig(detector="yunet")


def test_haar_detector_finds_the_face_or_says_what_is_missing(face, tmp_path):
    default = Path(getattr(cv2.data, "haarcascades", "")) / face_crop.HAAR_FILE
    if faces._cascade_classifier_class() is not None and default.is_file():  # OpenCV 4.x
        assert len(face_crop.build(face_crop.FaceCropConfig(detector="haar")).faces(on_canvas(face))) == 1
    else:  # OpenCV 5 ships neither the class (moved to opencv-contrib) nor the cascade files
        with pytest.raises(MemoZooError, match=f"CascadeClassifier|{face_crop.HAAR_FILE}"):
            face_crop.build(face_crop.FaceCropConfig(detector="haar"))
    if faces._cascade_classifier_class() is not None:
        with pytest.raises(MissingWeightsError, match="mine.xml"):
            face_crop.build(face_crop.FaceCropConfig(detector="haar", cascade=str(tmp_path / "mine.xml")))


# ---- quality_filter ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(skimage_data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


def test_heuristic_quality_orders_sharp_above_blurred_and_over_exposed(photo):
    sharp = quality.heuristic_quality(photo)
    blurred = quality.heuristic_quality(cv2.GaussianBlur(photo, (0, 0), 2.5))
    over = quality.heuristic_quality(np.clip(photo.astype(int) * 2 + 60, 0, 255).astype(np.uint8))
    noisy = quality.heuristic_quality(
        np.clip(photo + np.random.default_rng(0).normal(0, 40, photo.shape), 0, 255).astype(np.uint8))
    assert sharp > 70 > noisy
    assert sharp > 40 > max(blurred, over)
    assert 0 <= min(blurred, over, noisy) and sharp <= 100


def test_quality_filter_keeps_the_sharp_clip_and_drops_the_blurred_one(photo, tmp_path):
    stage = quality.build(quality.QualityConfig())
    sharp = stage.process(clip_of(tmp_path / "sharp.mp4", np.stack([photo] * 2)), tmp_path)
    blurred = stage.process(clip_of(tmp_path / "blur.mp4", np.stack([cv2.GaussianBlur(photo, (0, 0), 3)] * 2)),
                            tmp_path)
    assert sharp.kept and sharp.value > 40
    assert not blurred.kept and blurred.reason == f"quality {blurred.value:.1f} < 40"


class _MeanOfFirstChannel(torch.nn.Module):
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return crops[:, 0].mean(dim=(1, 2))


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize("form", ["pt2", "torchscript"])
def test_hyperiqa_loads_an_exported_model_fed_imagenet_crops(tmp_path, form):
    with pytest.raises(MissingWeightsError, match="hyperiqa.pt"):
        quality.build(quality.QualityConfig(method="hyperiqa", weights=str(tmp_path / "hyperiqa.pt")))
    if form == "pt2":
        path = tmp_path / "probe.pt2"
        batch = torch.export.Dim("batch", min=1, max=64)
        torch.export.save(torch.export.export(_MeanOfFirstChannel(), (torch.zeros(2, 3, 224, 224),),
                                              dynamic_shapes={"crops": {0: batch}}), str(path))
    else:
        path = tmp_path / "probe.pt"
        torch.jit.script(_MeanOfFirstChannel()).save(str(path))
    model = quality.HyperIQAModel(str(path), crops=4, device="cpu")
    frame = np.full((60, 80, 3), 128, np.uint8)
    assert model(frame) == pytest.approx((128 / 255 - 0.485) / 0.229, abs=1e-5)
    assert len(quality.grid_crops(np.zeros((512, 384, 3)), 224, 25)) == 25


# ---- lip_sync_filter -----------------------------------------------------------------------------


def speech_envelope(frames: int, seed: int) -> np.ndarray:
    """Syllable-like loudness per video frame: random bursts, 0..1."""
    rng = np.random.default_rng(seed)
    return np.clip(np.convolve(rng.random(frames), np.ones(3) / 3, mode="same") * 1.4 - 0.2, 0, 1)


def talking(envelope: np.ndarray, audio_envelope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose lower-middle 'mouth' brightness follows ``envelope``, and audio loud as ``audio_envelope``."""
    frames = np.full((len(envelope), 48, 48, 3), 110, np.uint8)
    frames[:, 34:44, 16:32] = (40 + 200 * envelope)[:, None, None, None].astype(np.uint8)
    carrier = np.sin(2 * np.pi * 180 * np.arange(len(envelope) * 640) / RATE)
    return frames, (0.5 * np.repeat(audio_envelope, 640) * carrier).astype(np.float32)


def test_energy_correlation_scores_synced_lips_above_unrelated_or_far_shifted_audio():
    scorer = lip_sync.EnergyCorrelationScorer(max_offset=15)
    env = speech_envelope(100, 1)
    synced = scorer(*talking(env, env), FPS)
    assert scorer.last_offset == 0
    late = scorer(*talking(env, np.roll(env, 3)), FPS)
    assert scorer.last_offset == 3  # found within the search window, still confident
    unrelated = scorer(*talking(env, speech_envelope(100, 2)), FPS)
    far = scorer(*talking(env, np.roll(env, 40)), FPS)
    assert synced > 6 and late > 6
    assert max(unrelated, far) < 4 < synced
    silent = scorer(*talking(env, np.zeros(100)), FPS)
    assert silent == 0.0


def test_lip_sync_filter_on_encoded_clips(tmp_path):
    env = speech_envelope(75, 3)
    stage = lip_sync.build(lip_sync.LipSyncConfig())
    good = stage.process(clip_of(tmp_path / "good.mp4", *talking(env, env)), tmp_path)
    bad = stage.process(clip_of(tmp_path / "bad.mp4", *talking(env, speech_envelope(75, 4))), tmp_path)
    assert good.kept and good.value >= 4
    assert not bad.kept and bad.reason.startswith("sync ") and bad.reason.endswith("(energy_correlation) < 4")


def test_syncnet_scorer_needs_weights_and_uses_the_evaluation_syncnet(tmp_path, monkeypatch):
    weights = tmp_path / "syncnet_v2.model"
    with pytest.raises(MissingWeightsError, match="syncnet_v2.model"):
        lip_sync.build(lip_sync.LipSyncConfig(scorer="syncnet", weights=str(weights)))
    weights.write_bytes(b"weights")
    import memo_zoo.perception.syncnet as syncnet  # the sync metric's SyncNet, shared through the core

    loaded = []
    monkeypatch.setattr(syncnet, "load_sync_scorer",
                        lambda path: loaded.append(path) or (lambda frames, audio, fps: 7.5))
    stage = lip_sync.build(lip_sync.LipSyncConfig(scorer="syncnet", weights=str(weights)))
    assert stage.threshold == 5.0 and loaded == [weights]
    result = stage.process(clip_of(tmp_path / "c.mp4", *talking(np.zeros(20), np.ones(20))), tmp_path)
    assert result.kept and result.value == 7.5


# ---- resize --------------------------------------------------------------------------------------


def test_resize_center_crops_to_a_square_and_resamples(tmp_path):
    frames = np.zeros((10, 48, 96, 3), np.uint8)
    frames[:, :, 24:72] = 200  # the centred square is bright, the sides dark
    clip = clip_of(tmp_path / "wide.mp4", frames, np.zeros(6400, np.float32))
    result = resize.build(resize.ResizeConfig(size=32, fps=12.5)).process(clip, tmp_path / "out")
    out, fps = read_frames(result.clips[0].video)
    assert out.shape == (5, 32, 32, 3) and fps == 12.5
    assert out.mean() > 180
    assert probe(result.clips[0].video).has_audio
    with pytest.raises(ValidationError, match="even"):
        resize.ResizeConfig(size=33)


# ---- the preprocess task -------------------------------------------------------------------------


class FolderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: Path = Field(..., description="folder of .mp4 clips")


class FolderDataset:
    skipped: list = []

    def __init__(self, config: FolderConfig):
        self.folder = config.folder

    def clips(self):
        return [ClipRecord(p.stem, p, speaker="spk", emotion="happy") for p in iter_files(self.folder, "*.mp4")]


class PreprocessTaskPlugins:
    @hookimpl
    def dataset_components(self):
        return [ComponentSpec("folder", FolderConfig, FolderDataset, "test folder of clips")]

    @hookimpl
    def task_components(self):
        from memo_zoo.tasks import preprocess

        return [ComponentSpec("preprocess", preprocess.PreprocessConfig, preprocess.build, "preprocess")]


def test_preprocess_task_logs_counts_report_and_dropped_table(workdir, photo):
    from mlflow import MlflowClient

    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo.runner import run_recipe

    clips = workdir / "clips"
    clip_of(clips / "sharp.mp4", np.stack([cv2.resize(photo, (64, 64), interpolation=cv2.INTER_AREA)] * 3))
    clip_of(clips / "flat.mp4", np.full((3, 64, 64, 3), 128, np.uint8))
    registry = load_registry(disabled=("builtin_preprocess", "builtin_tasks"),
                             extra_plugins=[("pp", plugin), ("pp_test", PreprocessTaskPlugins())])
    recipe = workdir / "pp.yaml"
    recipe.write_text(textwrap.dedent(f"""
        name: pp
        task: {{kind: preprocess, out_dir: out}}
        data:
          dataset: {{kind: folder, folder: {clips}}}
          preprocess:
            - {{kind: quality_filter}}
            - {{kind: resize, size: 32}}
    """))
    outcome = run_recipe(load_recipe(recipe, registry), registry)
    client = MlflowClient(tracking_uri=outcome.tracking_uri)
    run = client.get_run(outcome.run_id)
    metrics = run.data.metrics
    assert metrics["preprocess.quality_filter.dropped"] == 1 and metrics["preprocess.resize.kept"] == 1
    assert metrics["preprocess.clips_out"] == 1
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"report.jsonl", "metadata.jsonl", "dropped_clips.json"} <= artifacts
    table = json.loads(Path(client.download_artifacts(outcome.run_id, "dropped_clips.json", str(workdir))).read_text())
    assert table["data"] == [["flat", "quality_filter", table["data"][0][2]]]
    assert table["data"][0][2].startswith("quality ")
    entries = [json.loads(line) for line in (workdir / "out" / "metadata.jsonl").read_text().splitlines()]
    assert [e["video"] for e in entries] == ["data/video/sharp.mp4"]
