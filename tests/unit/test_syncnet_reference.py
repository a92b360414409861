"""Sync-C / Sync-D as the reference evaluation computes them (joonson/syncnet_python; issue 20,
item 2), against the golden set ``syncnet_python`` (tests/data/golden/syncnet_python/README.md).

- case 1 / 1b: face tracking (``track_shot``) and the per-frame crop (``crop_video``) of
  ``memo_zoo.perception.face_track``: every option from the case files, every value exact;
- case 2: the SyncNet evaluation (MFCC, windows, embeddings, distances, AV offset, Sync-D, Sync-C)
  with the random weights file, from the golden crops and also from the golden frames through the
  tracked crop path;
- a talking_world face moving across the frame: the tracked crop follows it, the fixed square does not.
"""

from __future__ import annotations

import json
from functools import cache

import cv2
import numpy as np
import pytest
import torch

from memo_zoo.perception import syncnet
from memo_zoo.perception.configs import SyncNetOptions
from memo_zoo.perception.face_boxes import FaceLocator
from memo_zoo.perception.face_track import (box_iou, crop_face, crop_geometry, detect_per_frame, main_face_track,
                                            track_faces, xywh_to_corners)
from memo_zoo.perception.faces import build_detector
from memo_zoo.perception.sync_offsets import search_offsets
from tests.golden import GoldenSet

GOLDEN = GoldenSet.named("syncnet_python")
# README, "Suggested tolerances": float32 network against a float64 distance search
NET_ATOL = 1e-4
MFCC_ATOL = 1e-9


@cache
def _case(name: str) -> tuple[dict, dict]:
    meta = json.loads(GOLDEN.path(f"{name}.json").read_text())
    arrays = {}
    if "data_file" in meta:
        with np.load(GOLDEN.path(meta["data_file"]), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    return meta, arrays


def _detections(meta: dict) -> list[list[list[float]]]:
    """The case's per-frame detections (json list-of-dicts form) as per-frame box lists; each dict's
    ``frame`` must be its position (track_faces numbers frames by position)."""
    frames = meta["detections_per_frame"]
    for index, faces in enumerate(frames):
        assert all(face["frame"] == index for face in faces), f"detections_per_frame[{index}] is not frame {index}"
    return [[face["bbox"] for face in faces] for faces in frames]


def _track(meta: dict):
    opt = meta["opt"]
    return track_faces(_detections(meta), opt["min_track"], opt["num_failed_det"], opt["min_face_size"])


# ---- case 1: tracking and cropping ----------------------------------------------------------------

def test_case1_track_is_the_reference_track():
    meta, arrays = _case("case1_track_crop")
    tracks = _track(meta)
    assert len(tracks) == meta["results"]["n_tracks"]
    np.testing.assert_array_equal(tracks[0].frames, arrays["track_frame"])
    np.testing.assert_allclose(tracks[0].boxes, arrays["track_bbox"], rtol=0, atol=1e-12)


def test_case1_crop_geometry_and_crops_are_the_reference_crops():
    meta, arrays = _case("case1_track_crop")
    geometry = crop_geometry(arrays["track_bbox"], meta["opt"]["crop_scale"])
    for name in ("s", "x", "y"):
        np.testing.assert_allclose(getattr(geometry, name), arrays[f"proc_{name}"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(geometry.bsi, arrays["crop_bsi"])
    np.testing.assert_array_equal(geometry.rects, arrays["crop_rect"])
    np.testing.assert_array_equal(geometry.rects[:, [1, 3]] - geometry.rects[:, [0, 2]],
                                  arrays["crop_pre_resize_hw"])
    frames = arrays["frames_bgr"][arrays["track_frame"]]
    crops = np.stack([crop_face(f, int(b), r) for f, b, r in zip(frames, geometry.bsi, geometry.rects)])
    np.testing.assert_array_equal(crops, arrays["crops_bgr"])  # cv2.resize: bit-exact


def test_case1b_every_track_exactly():
    meta, _ = _case("case1b_track_only")
    tracks = _track(meta)
    expected = meta["expected_tracks"]
    assert len(tracks) == len(expected)
    for got, want in zip(tracks, expected):
        np.testing.assert_array_equal(got.frames, want["frame"])
        np.testing.assert_allclose(got.boxes, want["bbox"], rtol=0, atol=1e-12)


def test_case1b_iou_vectors_and_the_exact_half_does_not_link():
    meta, _ = _case("case1b_track_only")
    for case in meta["iou_cases"]:
        assert box_iou(case["boxA"], case["boxB"]) == pytest.approx(case["iou"], abs=1e-12)
    half = next(c for c in meta["iou_cases"] if c["iou"] == 0.5)
    # two frames, one box each, IoU exactly 0.5: two one-detection tracks, not one of two
    tracks = track_faces([[half["boxA"]], [half["boxB"]]], min_track=0, num_failed_det=5, min_face_size=0)
    assert [list(t.frames) for t in tracks] == [[0], [1]]


def test_taken_face_skips_the_next_face_of_its_frame():
    # the reference removes a taken face from the list it iterates: the face listed after it in the
    # same frame is not looked at in that pass, even though it overlaps the track's last box
    a, a_twin = [0.0, 0.0, 100.0, 100.0], [2.0, 2.0, 102.0, 102.0]
    tracks = track_faces([[a, a_twin], [a], [a]], min_track=0, num_failed_det=5, min_face_size=0)
    assert [list(t.frames) for t in tracks] == [[0, 1, 2], [0]]
    np.testing.assert_array_equal(tracks[1].boxes, [a_twin])


def test_track_needs_more_than_min_track_and_a_large_enough_face():
    box = [0.0, 0.0, 50.0, 40.0]
    assert track_faces([[box]] * 3, min_track=3, num_failed_det=1, min_face_size=0) == []
    assert len(track_faces([[box]] * 4, min_track=3, num_failed_det=1, min_face_size=0)) == 1
    assert track_faces([[box]] * 4, min_track=3, num_failed_det=1, min_face_size=50) == []  # mean size 50: not > 50


# ---- case 2: the SyncNet evaluation ---------------------------------------------------------------

@cache
def _net() -> syncnet.SyncNet:
    meta, _ = _case("case2_syncnet")
    return syncnet.load_syncnet(GOLDEN.path(meta["weights_file"]))


def _reference_options(**extra) -> SyncNetOptions:
    """SyncNet read as the case's ``evaluate`` call read it (batch size and shifts from the README's
    ``opt``; BGR input)."""
    readme = GOLDEN.readme
    batch = int(readme.split("opt.batch_size=")[1].split("`")[0])
    vshift = int(readme.split("opt.vshift=")[1].split("`")[0])
    return SyncNetOptions(batch_size=batch, max_offset=vshift, bgr=True, **extra)


def _check_case2(video: torch.Tensor, audio: torch.Tensor, windows_in: list[torch.Tensor]):
    meta, arrays = _case("case2_syncnet")
    np.testing.assert_array_equal(torch.cat(windows_in).numpy(), arrays["aud_in"])  # MFCC windows 4v:4v+20
    np.testing.assert_allclose(video.numpy(), arrays["im_feat"], rtol=0, atol=NET_ATOL)
    np.testing.assert_allclose(audio.numpy(), arrays["cc_feat"], rtol=0, atol=NET_ATOL)
    result = search_offsets(video, audio, int(arrays["dists"].shape[1]) // 2)
    np.testing.assert_allclose(result.frame_distances, arrays["dists"], rtol=0, atol=NET_ATOL)
    np.testing.assert_allclose(result.mean_distances, arrays["mdist"], rtol=0, atol=NET_ATOL)
    assert int(np.argmin(result.mean_distances)) == int(arrays["minidx"])
    assert result.av_offset == int(arrays["offset"]) == meta["results"]["offset"]
    assert result.min_distance == pytest.approx(float(arrays["minval"]), abs=NET_ATOL)
    assert result.confidence == pytest.approx(float(arrays["conf"]), abs=NET_ATOL)


def _recording_audio_windows(evaluator: syncnet.SyncNetEvaluator) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    forward = evaluator.net.forward_aud

    def record(windows):
        seen.append(windows.cpu())
        return forward(windows)
    evaluator.net.forward_aud = record
    return seen


def test_case2_mfcc_is_the_reference_mfcc():
    _, arrays = _case("case2_syncnet")
    cepstra = syncnet.mfcc(arrays["audio_int16"].astype(np.float64))
    np.testing.assert_allclose(cepstra, arrays["mfcc"], rtol=0, atol=MFCC_ATOL)
    # windows: min(video frames, samples // 640) - 5 (one fewer than would fit, as the reference)
    frames = arrays["imtv_uint8"].shape[2]
    windows = min(frames, len(arrays["audio_int16"]) // syncnet.SAMPLES_PER_FRAME) - syncnet.WINDOW_FRAMES
    np.testing.assert_array_equal(arrays["lip_window_start"], np.arange(windows))
    np.testing.assert_array_equal(arrays["aud_window_start"], syncnet.MFCC_PER_FRAME * np.arange(windows))


def test_case2_syncnet_on_the_reference_crops():
    _, arrays = _case("case2_syncnet")
    evaluator = syncnet.SyncNetEvaluator(_net(), _reference_options(), torch.device("cpu"))
    windows_in = _recording_audio_windows(evaluator)
    crops_rgb = arrays["imtv_uint8"][0].transpose(1, 2, 3, 0)[..., ::-1]  # (1, 3, T, H, W) BGR -> (T, H, W, 3) RGB
    video, audio = evaluator.crop_embeddings(crops_rgb, arrays["audio_int16"] / 32768.0)
    _check_case2(video, audio, windows_in)


def test_case1_frames_through_the_tracked_path_give_case2(monkeypatch):
    """Case 1's frames and detections (a stand-in detector returns them) through the evaluator's
    tracked path: the crops case 2 ran on, and so its embeddings and figures."""
    meta1, arrays1 = _case("case1_track_crop")
    _, arrays2 = _case("case2_syncnet")
    frames_rgb = np.ascontiguousarray(arrays1["frames_bgr"][..., ::-1])
    by_frame = {frame.tobytes(): boxes for frame, boxes in zip(frames_rgb, _detections(meta1))}

    def detector(frame):  # x, y, w, h as the zoo's detectors give them
        boxes = np.asarray(by_frame[np.ascontiguousarray(frame).tobytes()], dtype=np.float64).reshape(-1, 4)
        return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    monkeypatch.setattr(syncnet, "build_detector", lambda *args, **kwargs: detector)
    opt = meta1["opt"]
    options = _reference_options(face_detector="dlib_hog", crop_scale=opt["crop_scale"], min_track=opt["min_track"],
                                 num_failed_det=opt["num_failed_det"], min_face_size=opt["min_face_size"])
    assert options.crop_mode == "tracked"
    evaluator = syncnet.SyncNetEvaluator(_net(), options, torch.device("cpu"))
    windows_in = _recording_audio_windows(evaluator)
    video, audio = evaluator.embeddings(frames_rgb, arrays2["audio_int16"] / 32768.0, float(opt["frame_rate"]))
    assert evaluator.last_tracked
    _check_case2(video, audio, windows_in)


def test_crop_mode_defaults_follow_the_detector():
    assert SyncNetOptions().crop_mode == "fixed"
    assert SyncNetOptions(face_detector="dlib_hog").crop_mode == "tracked"
    assert SyncNetOptions(face_detector="dlib_hog", crop_mode="fixed").crop_mode == "fixed"
    with pytest.raises(ValueError, match="crop_mode tracked needs a face_detector"):
        SyncNetOptions(crop_mode="tracked")


# ---- a talking_world face moving across the frame -------------------------------------------------

PAN_FRAMES, PORTRAIT, WINDOW, MARGIN = 40, 112, 160, 64
EDGE = 6  # the reference's zero-padded 13-frame median filter leans on the first and last 6 frames


@cache
def _panning_clip() -> tuple[np.ndarray, np.ndarray]:
    """(frames, mouth centres): a talking_world portrait (mouth moving, head turning and rolling)
    seen by a camera that pans, so the face drifts 2 px right and 0.5 px down per frame. The
    mouth centre is the renderer's own landmark (truth), moved with the pan."""
    from memo_zoo_plugins.datasets.talking_world.face import FaceState, face_landmarks, render
    from memo_zoo_plugins.datasets.talking_world.identity import FaceIdentity

    identity = FaceIdentity.from_seed(3)
    frames, mouths = [], []
    for i in range(PAN_FRAMES):
        phase = 2 * np.pi * i / PAN_FRAMES
        state = FaceState(mouth_open=0.5 + 0.4 * np.sin(3 * phase), yaw=0.15 * np.sin(phase),
                          roll=0.08 * np.sin(2 * phase))
        world = cv2.copyMakeBorder(render(identity, state, PORTRAIT), MARGIN, MARGIN, MARGIN, MARGIN,
                                   cv2.BORDER_REPLICATE)
        left, top = 78 - 2 * i, 30 - i // 2
        frames.append(world[top:top + WINDOW, left:left + WINDOW])
        mouths.append(face_landmarks(identity, state, PORTRAIT)["mouth_centre"] + [MARGIN - left, MARGIN - top])
    return np.stack(frames), np.asarray(mouths)


@cache
def _panning_detections():
    return detect_per_frame(build_detector("dlib_hog"), _panning_clip()[0])


def test_tracked_crop_follows_a_moving_head_where_the_fixed_square_does_not():
    frames, mouths = _panning_clip()
    tracks = track_faces(_panning_detections(), min_track=10, num_failed_det=25, min_face_size=20)
    assert len(tracks) == 1 and list(tracks[0].frames) == list(range(PAN_FRAMES))
    geometry = crop_geometry(tracks[0].boxes)
    centres = np.stack([(geometry.rects[:, 2] + geometry.rects[:, 3]) / 2 - geometry.bsi,
                        (geometry.rects[:, 0] + geometry.rects[:, 1]) / 2 - geometry.bsi], axis=1)
    inner = slice(EDGE, PAN_FRAMES - EDGE)
    tracked_error = np.abs(mouths - centres)[inner]
    assert tracked_error.max() < 4.0, tracked_error.max()

    left, top, side, found = FaceLocator(SyncNetOptions(face_detector="dlib_hog", crop_mode="fixed")).square(
        frames, syncnet.CROP_SCALE, syncnet.CROP_SHIFT)
    assert found
    fixed_error = np.abs(mouths - [left + side / 2, top + side / 2])[inner]
    assert fixed_error.max() > 15.0, fixed_error.max()


def test_tracked_evaluation_of_the_moving_head_and_its_fallback(monkeypatch):
    frames, _ = _panning_clip()
    detections = _panning_detections()
    # detections of the clip as computed once above, so that the evaluator's two runs stay fast
    by_frame = {np.ascontiguousarray(f).tobytes(): d for f, d in zip(frames, detections)}
    monkeypatch.setattr("memo_zoo.perception.face_track.detect_per_frame",
                        lambda detector, clip: [by_frame[np.ascontiguousarray(f).tobytes()] for f in clip])
    # audio for the first 8 frames only: 3 windows, so the network runs briefly (the crops are what is tested)
    audio_frames = 8
    audio = np.sin(np.linspace(0, 80 * np.pi, audio_frames * syncnet.SAMPLES_PER_FRAME)) * 0.1
    options = _reference_options(face_detector="dlib_hog", min_track=10, min_face_size=20)
    evaluator = syncnet.SyncNetEvaluator(_net(), options, torch.device("cpu"))
    video, _ = evaluator.embeddings(frames, audio, 25.0)
    assert evaluator.last_tracked and video.shape[0] == audio_frames - syncnet.WINDOW_FRAMES
    # no track long enough (40 detections, not more than 40): the fixed square instead, said so
    assert main_face_track(frames, None, PAN_FRAMES, 25, 20) is None
    evaluator.config = _reference_options(face_detector="dlib_hog", min_track=PAN_FRAMES, min_face_size=20)
    video, _ = evaluator.embeddings(frames, audio, 25.0)
    assert not evaluator.last_tracked and video.shape[0] == audio_frames - syncnet.WINDOW_FRAMES


def test_detector_boxes_convert_to_corners():
    np.testing.assert_array_equal(xywh_to_corners(np.array([[10.0, 20.0, 30.0, 40.0]])), [[10, 20, 40, 60]])


def test_sync_metric_reports_whether_the_face_was_tracked(monkeypatch):
    from memo_zoo.eval.protocol import VideoSample
    from memo_zoo_eval.metrics import sync

    frames, _ = _panning_clip()
    detections = _panning_detections()
    by_frame = {np.ascontiguousarray(f).tobytes(): d for f, d in zip(frames, detections)}
    monkeypatch.setattr("memo_zoo.perception.face_track.detect_per_frame",
                        lambda detector, clip: [by_frame[np.ascontiguousarray(f).tobytes()] for f in clip])
    audio = (np.sin(np.linspace(0, 80 * np.pi, 8 * syncnet.SAMPLES_PER_FRAME)) * 0.1).astype(np.float32)
    metric = sync.build(sync.SyncConfig(weights=str(GOLDEN.path("syncnet_v2_random.model")), device="cpu",
                                        face_detector="dlib_hog", min_track=10, min_face_size=20))
    metric.update(VideoSample(id="pan", frames=frames, fps=25.0, audio=audio))
    assert metric.compute().per_video["pan"]["face_tracked"] == 1.0
