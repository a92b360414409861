"""Training samples (memo_zoo.data.samples) and the decode-once frame cache (memo_zoo.data.cache).

The test clips make alignment checkable from the decoded tensors alone: the left half of frame i
is grey level 10 + 5 i, the right half encodes which clip it is, and the audio under frame i is a
1 kHz tone of amplitude 0.1 + 0.02 i (spec A5 windows must land on those steps; spec D3 16 kHz).
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from memo_zoo.data import media
from memo_zoo.data.cache import FrameCache
from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.samples import (SampleConfig, SkippedClipWarning, TalkingHeadSamples, collate,
                                   make_loader)
from memo_zoo.emotion import PAPER_LABELS, no_emotion_index
from memo_zoo.errors import MemoZooError

FPS, SIDE, FRAMES, RATE = 25, 32, 40, 16_000
SPF = RATE // FPS  # 640 audio samples per video frame


def _amplitude(frame: int) -> float:
    return 0.1 + 0.02 * frame


def _write_clip(path, code: int, frames: int = FRAMES, audio_frames: int | None = None):
    video = np.zeros((frames, SIDE, SIDE, 3), np.uint8)
    for i in range(frames):
        video[i, :, : SIDE // 2] = 10 + 5 * i
        video[i, :, SIDE // 2:] = 30 + 60 * code
    n = (audio_frames if audio_frames is not None else frames) * SPF
    envelope = np.repeat([_amplitude(i) for i in range(n // SPF)], SPF)
    audio = (envelope * np.sin(2 * np.pi * 1000 * np.arange(n) / RATE)).astype(np.float32)
    return media.write_video(path, video, FPS, audio)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four good clips: s1 happy, s1 sad (a decoupling pair), s2 angry (no partner), unlabelled."""
    root = tmp_path_factory.mktemp("clips")
    labels = [("s1", "happy"), ("s1", "sad"), ("s2", "angry"), (None, None)]
    return [ClipRecord(clip_id=f"c{code}", video=_write_clip(root / f"c{code}.mp4", code), speaker=speaker,
                       emotion=emotion) for code, (speaker, emotion) in enumerate(labels)]


def _config(**overrides) -> SampleConfig:
    fields = dict(fps=FPS, size=SIDE, clip_frames=8, motion_frames=[4, 8, 12], samples_per_clip=4, seed=7)
    fields.update(overrides)
    return SampleConfig(**fields)


def _grey(images: torch.Tensor, left: bool) -> np.ndarray:
    """Mean grey level (0..255) of the left or right half of (..., 3, S, S) images in [-1, 1]."""
    half = images[..., 4:28, 3:13] if left else images[..., 4:28, 19:29]
    return ((half.mean(dim=(-1, -2, -3)) + 1) * 127.5).numpy()


def _frame_index(images: torch.Tensor) -> np.ndarray:
    return np.rint((_grey(images, left=True) - 10) / 5).astype(int)


def _clip_code(images: torch.Tensor) -> np.ndarray:
    return np.rint((_grey(images, left=False) - 30) / 60).astype(int)


def test_items_have_the_documented_shapes_dtypes_and_labels(clips, tmp_path):
    samples = TalkingHeadSamples(clips, _config(), cache_dir=tmp_path)
    assert len(samples) == 16 and samples.speakers == ("s1", "s2")
    for index in range(len(samples)):
        item = samples[index]
        M = item["motion"].shape[0]
        assert M in (4, 8, 12)
        assert item["reference"].shape == (3, SIDE, SIDE)
        assert item["target"].shape == (8, 3, SIDE, SIDE)
        assert item["motion"].shape == (M, 3, SIDE, SIDE) and item["motion_mask"].shape == (M,)
        assert item["motion_mask"].dtype == torch.bool
        assert item["audio"].shape == (8, 5, SPF) and item["audio_clip"].shape == (8 * SPF,)
        for key in ("reference", "target", "motion", "audio", "audio_clip"):
            assert item[key].dtype == torch.float32
        for key in ("reference", "target", "motion"):
            assert item[key].min() >= -1 and item[key].max() <= 1
        assert item["emotion"].dtype == torch.long and item["emotion"].shape == ()
        clip = index % 4
        expected_emotion = [PAPER_LABELS.index(e) for e in ("happy", "sad", "angry")] + [no_emotion_index()]
        assert int(item["emotion"]) == expected_emotion[clip]
        assert item["speaker"] == [0, 0, 1, -1][clip] and item["clip_id"] == f"c{clip}"
        assert 0 <= item["start"] <= FRAMES - 8


def test_target_is_consecutive_and_motion_frames_immediately_precede_it(clips, tmp_path):
    config = _config(motion_frames=[4, 12], samples_per_clip=10, emotion_decoupling=False)
    samples = TalkingHeadSamples(clips, config, cache_dir=tmp_path)
    padded = 0
    for index in range(len(samples)):
        item = samples[index]
        start, M = item["start"], item["motion"].shape[0]
        assert list(_frame_index(item["target"])) == list(range(start, start + 8))
        assert set(_clip_code(item["target"])) == {index % 4}
        real = list(range(max(0, start - M), start))
        pad = M - len(real)
        # Padding (a target near the start) repeats the clip's first frame, at the oldest end.
        assert list(_frame_index(item["motion"])) == [0] * pad + real
        assert item["motion_mask"].tolist() == [False] * pad + [True] * len(real)
        padded += pad > 0
        # Same-clip reference: a frame outside the target window.
        assert item["reference_source"] == "same_clip"
        reference = int(_frame_index(item["reference"]))
        assert not start <= reference < start + 8
    assert padded > 0  # the seed gives targets near the start, so padding was exercised


def test_motion_padding_can_repeat_the_reference(clips, tmp_path):
    config = _config(motion_frames=16, motion_padding="reference", samples_per_clip=10)
    samples = TalkingHeadSamples(clips, config, cache_dir=tmp_path)
    for index in range(len(samples)):
        item = samples[index]
        pad = int((~item["motion_mask"]).sum())
        assert pad == max(0, 16 - item["start"])
        assert torch.equal(item["motion"][:pad], item["reference"].expand(pad, 3, SIDE, SIDE))
        assert list(_frame_index(item["motion"][pad:])) == list(range(item["start"] - 16 + pad, item["start"]))


def test_audio_window_of_each_frame_is_centred_on_that_frame(clips, tmp_path):
    samples = TalkingHeadSamples(clips, _config(samples_per_clip=6), cache_dir=tmp_path)
    errors = {-1: [], 0: [], 1: []}
    edges = 0
    for index in range(len(samples)):
        item = samples[index]
        audio = item["audio"].numpy()  # (F, 5, SPF)
        # The centre window is the sound under the frame, and audio_clip is those, concatenated.
        assert np.array_equal(item["audio_clip"].numpy(), audio[:, 2].reshape(-1))
        # Peak amplitude of a 1 kHz tone from the RMS of the middle half of each segment
        # (the ends blur across the envelope steps after AAC coding).
        measured = np.sqrt(2 * np.mean(audio[..., SPF // 4: 3 * SPF // 4] ** 2, axis=-1))
        frame = item["start"] + np.arange(8)[:, None] + np.arange(-2, 3)[None, :]
        outside = (frame < 0) | (frame >= FRAMES)
        assert np.all(audio[outside] == 0)  # zero padding beyond the track
        edges += outside.any()
        inside = ~outside & (frame >= 3)  # the AAC encoder's first frames are not exact
        for shift in errors:
            expected = np.array([[_amplitude(k + shift) for k in row] for row in frame])
            errors[shift].extend(np.abs(measured - expected)[inside])
    assert edges > 0
    assert np.mean(errors[0]) < 0.004
    # One frame off would be off by a whole envelope step (0.02) nearly everywhere.
    assert np.mean(errors[-1]) > 0.015 and np.mean(errors[1]) > 0.015


def test_emotion_decoupling_draws_the_same_speaker_in_another_emotion(clips, tmp_path):
    samples = TalkingHeadSamples(clips, _config(samples_per_clip=6), cache_dir=tmp_path)
    for index in range(len(samples)):
        item = samples[index]
        clip = index % 4
        if clip in (0, 1):  # s1 happy <-> s1 sad
            assert item["reference_source"] == "other_emotion"
            assert int(_clip_code(item["reference"])) == 1 - clip
        else:  # s2 has one emotion only; c3 is unlabelled: fall back to the same clip
            assert item["reference_source"] == "same_clip"
            assert int(_clip_code(item["reference"])) == clip
    off = TalkingHeadSamples(clips, _config(emotion_decoupling=False), cache_dir=tmp_path)
    assert {off[i]["reference_source"] for i in range(len(off))} == {"same_clip"}


def test_decoupling_partners_are_every_other_emotion_of_the_speaker_and_only_those(clips, tmp_path):
    # One speaker, four clips: two happy (videos c0, c1), one sad (c2), one angry (c3).
    labels = ["happy", "happy", "sad", "angry"]
    records = [ClipRecord(f"m{i}", clip.video, speaker="s1", emotion=label)
               for i, (clip, label) in enumerate(zip(clips, labels))]
    samples = TalkingHeadSamples(records, _config(samples_per_clip=12), cache_dir=tmp_path)
    seen: dict[int, set[int]] = {i: set() for i in range(4)}
    for index in range(len(samples)):
        item = samples[index]
        assert item["reference_source"] == "other_emotion"
        seen[index % 4].add(int(_clip_code(item["reference"])))
    assert seen == {0: {2, 3}, 1: {2, 3}, 2: {0, 1, 3}, 3: {0, 1, 2}}


def test_collate_pads_motion_to_the_longest_at_the_oldest_end(clips, tmp_path):
    samples = TalkingHeadSamples(clips, _config(motion_frames=[4, 8, 12], samples_per_clip=6), cache_dir=tmp_path)
    items = [samples[i] for i in range(8)]
    counts = [item["motion"].shape[0] for item in items]
    assert len(set(counts)) > 1
    batch = collate(items)
    longest = max(counts)
    assert batch["motion"].shape == (8, longest, 3, SIDE, SIDE) and batch["motion_mask"].shape == (8, longest)
    assert batch["target"].shape == (8, 8, 3, SIDE, SIDE) and batch["audio"].shape == (8, 8, 5, SPF)
    assert batch["emotion"].shape == (8,) and batch["speaker"].dtype == torch.long
    assert batch["clip_id"] == [item["clip_id"] for item in items]
    for row, item in enumerate(items):
        missing = longest - item["motion"].shape[0]
        assert torch.equal(batch["motion"][row, missing:], item["motion"])
        assert torch.equal(batch["motion_mask"][row, missing:], item["motion_mask"])
        assert not batch["motion_mask"][row, :missing].any()
        assert torch.equal(batch["motion"][row, :missing], item["motion"][:1].expand(missing, 3, SIDE, SIDE))


def test_cache_decodes_each_clip_once_and_survives_a_new_dataset(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    first = TalkingHeadSamples(clips, _config())  # default cache dir comes from the settings
    entries = sorted((tmp_path / "cache" / "frames").iterdir())
    assert len(entries) == 4
    assert all(sorted(p.name for p in entry.iterdir()) == ["audio.npy", "frames.npy", "meta.json"]
               for entry in entries)
    assert isinstance(first[0]["target"], torch.Tensor)
    assert isinstance(first._arrays[0][0], np.memmap)  # items read through memory maps

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a clip that is cached")

    monkeypatch.setattr(media, "read_frames", no_decoding)
    monkeypatch.setattr(media, "read_audio", no_decoding)
    second = TalkingHeadSamples(clips, _config())
    for index in range(len(first)):
        a, b = first[index], second[index]
        assert all(torch.equal(a[k], b[k]) for k in ("reference", "target", "motion", "audio"))

    # A changed source file (new mtime) is a new entry, decoded again.
    os.utime(clips[0].video, ns=(1, 1))
    cache = FrameCache(tmp_path / "cache", fps=FPS, size=SIDE)
    assert cache.lookup(clips[0]) is None and cache.lookup(clips[1]) is not None


def test_non_square_clips_are_scaled_by_the_short_side_and_centre_cropped(tmp_path):
    video = np.zeros((4, 32, 64, 3), np.uint8)  # 64 wide: bands 0-15, 16-47 (the centre), 48-63
    video[:, :, :16], video[:, :, 16:48], video[:, :, 48:] = 40, 200, 40
    path = media.write_video(tmp_path / "wide.mp4", video, FPS, np.zeros(4 * SPF, np.float32))
    frames = FrameCache(tmp_path, fps=FPS, size=16).entry(ClipRecord("wide", path)).frames()
    assert frames.shape == (4, 16, 16, 3)
    assert np.abs(frames[:, :, 2:14].astype(int) - 200).max() < 12  # only the centre band is kept


def test_damaged_cache_entry_is_decoded_again(clips, tmp_path):
    cache = FrameCache(tmp_path, fps=FPS, size=SIDE)
    entry = cache.entry(clips[1])
    entry.frames_path.write_bytes(b"not an array")
    assert cache.lookup(clips[1]) is None
    again = cache.entry(clips[1])
    assert again.frames().shape == (FRAMES, SIDE, SIDE, 3)
    assert not [p for p in entry.directory.iterdir() if p.name.startswith(".")]  # no temp files left


def test_batches_are_identical_with_zero_or_two_workers_and_change_with_the_epoch(clips, tmp_path):
    samples = TalkingHeadSamples(clips, _config(samples_per_clip=3), cache_dir=tmp_path)

    def epoch(num_workers, number):
        samples.set_epoch(number)
        return list(make_loader(samples, batch_size=5, num_workers=num_workers, shuffle=True))

    samples[0]
    assert samples._arrays and not pickle.loads(pickle.dumps(samples))._arrays  # maps are not pickled
    serial, parallel = epoch(0, 0), epoch(2, 0)
    assert len(serial) == len(parallel) == 3
    for a, b in zip(serial, parallel):
        assert a["clip_id"] == b["clip_id"] and a["reference_source"] == b["reference_source"]
        for key in ("reference", "target", "motion", "motion_mask", "audio", "emotion", "speaker", "start"):
            assert torch.equal(a[key], b[key]), key
    again = epoch(0, 0)
    assert all(torch.equal(a["start"], b["start"]) for a, b in zip(serial, again))
    later = epoch(0, 1)
    assert any(not torch.equal(a["start"], b["start"]) or a["clip_id"] != b["clip_id"]
               for a, b in zip(serial, later))


def test_bad_clips_are_skipped_with_a_warning_naming_the_file(clips, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    mismatched = _write_clip(tmp_path / "mismatch.mp4", 0, audio_frames=2 * FRAMES)
    short = _write_clip(tmp_path / "short.mp4", 0, frames=8)
    bad = [ClipRecord("bad", corrupt), ClipRecord("long_audio", mismatched), ClipRecord("short", short)]
    with pytest.warns(SkippedClipWarning) as caught:
        samples = TalkingHeadSamples([*clips, *bad], _config(), cache_dir=tmp_path / "cache")
    messages = "\n".join(str(w.message) for w in caught)
    for path in (corrupt, mismatched, short):
        assert str(path) in messages
    assert [s.path for s in samples.skipped] == [str(corrupt), str(mismatched), str(short)]
    assert "differ" in samples.skipped[1].reason and "clip_frames" in samples.skipped[2].reason
    assert [c.clip_id for c in samples.clips] == ["c0", "c1", "c2", "c3"]
    with pytest.warns(SkippedClipWarning), pytest.raises(MemoZooError, match="no usable clips"):
        TalkingHeadSamples(bad[:1], _config(), cache_dir=tmp_path / "cache")


def test_config_is_strict_and_labels_follow_the_label_set(clips, tmp_path):
    with pytest.raises(ValidationError):
        SampleConfig(unknown_field=1)
    with pytest.raises(ValidationError):
        SampleConfig(motion_frames=[])
    with pytest.raises(ValidationError):
        SampleConfig(motion_frames=[16, 0])
    assert SampleConfig(motion_frames=[16, 32, 48]).motion_choices == (16, 32, 48)
    assert SampleConfig(fps=30).samples_per_frame == 533
    relabelled = [ClipRecord("o", clips[0].video, emotion="others")]
    samples = TalkingHeadSamples(relabelled, _config(label_set="emotion2vec"), cache_dir=tmp_path)
    assert int(samples[0]["emotion"]) == 5  # emotion2vec's "other"
    with pytest.raises(ValueError, match="not in the paper label set"):
        TalkingHeadSamples([ClipRecord("x", clips[0].video, emotion="contempt")], _config(), cache_dir=tmp_path)
    assert len(TalkingHeadSamples(clips, _config(samples_per_epoch=7), cache_dir=tmp_path)) == 7


@pytest.mark.parametrize("padding", ["first_frame", "reference"])
def test_frame_keys_name_the_clip_and_frame_of_every_image_before_and_after_collate(clips, tmp_path, padding):
    """reference_key / target_keys / motion_keys are (clip index, frame index) of each image: the
    identity the trainer's latent cache looks latents up by, so a wrong key would train on
    another frame's latent. The test clips paint the frame index and the clip into the pixels."""
    config = _config(motion_frames=[4, 8, 12], samples_per_clip=6, motion_padding=padding)
    samples = TalkingHeadSamples(clips, config, cache_dir=tmp_path)
    items = [samples[i] for i in range(12)]
    decoupled = 0
    for item in items:
        for images, keys in ((item["reference"][None], item["reference_key"][None]),
                             (item["target"], item["target_keys"]), (item["motion"], item["motion_keys"])):
            assert keys.dtype == torch.long and keys.shape == (images.shape[0], 2)
            assert list(_frame_index(images)) == keys[:, 1].tolist()
            assert list(_clip_code(images)) == keys[:, 0].tolist()
        decoupled += item["reference_source"] == "other_emotion"
    assert decoupled > 0  # a reference from the partner clip was keyed too
    batch = collate(items)
    assert batch["motion_keys"].shape == (12, batch["motion"].shape[1], 2)
    for row in range(12):
        assert list(_frame_index(batch["motion"][row])) == batch["motion_keys"][row, :, 1].tolist()
        assert list(_clip_code(batch["motion"][row])) == batch["motion_keys"][row, :, 0].tolist()
    assert torch.equal(batch["target_keys"], torch.stack([item["target_keys"] for item in items]))


def _consecutive(indices) -> bool:
    return list(indices) == list(range(indices[0], indices[0] + len(indices)))


def test_motion_decoupling_takes_the_memory_from_the_speakers_clip_in_another_emotion(clips, tmp_path):
    """Issue 23: with motion_decoupling=1 the motion frames of a clip with a partner are M
    consecutive real frames of that partner (s1 happy <-> s1 sad); clips without one keep their own past."""
    config = _config(samples_per_clip=8, motion_decoupling=1.0)
    samples = TalkingHeadSamples(clips, config, cache_dir=tmp_path)
    ends = set()
    for index in range(len(samples)):
        item = samples[index]
        clip, motion = index % 4, item["motion"]
        indices = _frame_index(motion)
        assert list(_clip_code(motion)) == item["motion_keys"][:, 0].tolist()
        assert list(indices) == item["motion_keys"][:, 1].tolist()
        if clip in (0, 1):
            assert item["motion_source"] == "other_emotion"
            assert set(_clip_code(motion)) == {1 - clip}
            assert _consecutive(indices) and indices[-1] < FRAMES  # real frames, oldest first
            assert bool(item["motion_mask"].all())
            ends.add(int(indices[-1]) + 1)
        else:  # no partner: the frames before the target, as without decoupling
            assert item["motion_source"] == "same_clip"
            assert set(_clip_code(motion)) == {clip}
            assert indices[-1] == max(item["start"] - 1, 0)  # padding (the first frame) goes in front
    assert len(ends) > 3  # the donor's frames end anywhere in it, not at one place
    assert collate([samples[i] for i in range(4)])["motion_source"] == [
        "other_emotion", "other_emotion", "same_clip", "same_clip"]


def test_motion_decoupling_keeps_every_other_draw_and_mixes_in_the_share_asked(clips, tmp_path):
    """The source is drawn after the start and the reference, so an item's target and reference are
    those of the same item without decoupling; about half of the pair's items are decoupled at 0.5."""
    plain = TalkingHeadSamples(clips, _config(samples_per_clip=50), cache_dir=tmp_path)
    half = TalkingHeadSamples(clips, _config(samples_per_clip=50, motion_decoupling=0.5), cache_dir=tmp_path)
    decoupled = 0
    for index in range(0, len(plain), 2):  # clips 0 and 2
        a, b = plain[index], half[index]
        assert a["start"] == b["start"] and torch.equal(a["reference_key"], b["reference_key"])
        assert torch.equal(a["target"], b["target"])
        if b["motion_source"] == "same_clip":
            assert torch.equal(a["motion"], b["motion"]) and torch.equal(a["motion_keys"], b["motion_keys"])
        else:
            assert index % 4 == 0
            decoupled += 1
    assert 15 <= decoupled <= 35  # of 50 items of clip 0 at p = 0.5
    assert {plain[i]["motion_source"] for i in range(len(plain))} == {"same_clip"}


def test_motion_decoupling_works_without_reference_decoupling(clips, tmp_path):
    config = _config(emotion_decoupling=False, motion_decoupling=1.0)
    item = TalkingHeadSamples(clips, config, cache_dir=tmp_path)[0]
    assert item["reference_source"] == "same_clip" and int(_clip_code(item["reference"])) == 0
    assert item["motion_source"] == "other_emotion" and set(_clip_code(item["motion"])) == {1}
    with pytest.raises(ValidationError, match="motion_decoupling"):
        _config(motion_decoupling=1.5)
