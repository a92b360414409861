"""The dataset readers of spec §11 on tiny trees of each layout (tests/data_fixtures.py).

Per reader: clip ids, speaker / emotion / intensity / view, the label mapping into the paper's
8 classes (spec E4), embeddings found, a reason for every file left out (corrupt, empty, no
video, no audio, audio/video length mismatch, bad names), and ``MemoZooError`` -- never a crash
or a silently empty list -- for a root that is missing, not a folder, or another layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from memo_zoo.data.clip import ClipRecord
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError
from memo_zoo.plugin.manager import load_registry
from memo_zoo.slots.dataset import ClipDataset
from memo_zoo_plugins.datasets.readers import (
    celebv_hq, common, hallo, hdtf, mead, memo_layout, plugin, video_folder, voxceleb2,
)
from tests import data_fixtures as fx

READERS = {
    "memo_layout": (memo_layout.MemoLayoutConfig, memo_layout.build, fx.build_memo_tree),
    "hallo_layout": (hallo.HalloLayoutConfig, hallo.build, fx.build_hallo_tree),
    "video_folder": (video_folder.VideoFolderConfig, video_folder.build, fx.build_video_folder),
    "hdtf": (hdtf.HdtfConfig, hdtf.build, fx.build_hdtf_tree),
    "voxceleb2": (voxceleb2.VoxCeleb2Config, voxceleb2.build, fx.build_voxceleb2_tree),
    "mead": (mead.MeadConfig, mead.build, fx.build_mead_tree),
    "celebv_hq": (celebv_hq.CelebVHQConfig, celebv_hq.build, fx.build_celebv_hq_tree),
}


def read(kind: str, root: Path, **options):
    config_class, build, _ = READERS[kind]
    dataset = build(config_class(root=root, **options))
    return dataset, dataset.clips()


def by_id(clips: list[ClipRecord]) -> dict[str, ClipRecord]:
    return {clip.clip_id: clip for clip in clips}


def reasons(dataset, root: Path) -> dict[str, str]:
    """Skipped clips as {path relative to root: reason}."""
    return {Path(s.path).relative_to(root).as_posix() if Path(s.path).is_relative_to(root) else s.path: s.reason
            for s in dataset.skipped}


# --- registration and the shared rules --------------------------------------------------------

def test_plugin_registers_all_seven_readers_buildable_with_defaults():
    # The installed entry point (if any) is disabled so that the module is not registered twice.
    registry = load_registry(disabled=("builtin_dataset_readers",), extra_plugins=[("readers_under_test", plugin)])
    assert set(READERS) <= set(registry.kinds("dataset"))
    for kind in READERS:
        spec = registry.get("dataset", kind).spec
        assert "kind" not in spec.config.model_fields and "root" in spec.config.model_fields
        assert all(field.description for field in spec.config.model_fields.values()), kind
        # Building never touches the disk: the default root need not exist (contract tests build defaults).
        assert isinstance(spec.factory(spec.config()), ClipDataset)


def test_every_label_table_maps_into_the_paper_classes():
    for table in common.LABEL_TABLES.values():
        assert set(table.values()) <= set(PAPER_LABELS)
    assert sorted(common.MEAD_EMOTIONS) == ["angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad",
                                           "surprised"]


@pytest.mark.parametrize("raw, table, expected", [
    ("fear", "mead", "fearful"), ("contempt", "mead", "others"), ("surprised", "mead", "surprised"),
    ("Sadness", "celebv_hq", "sad"), (" ANGER ", "celebv_hq", "angry"), ("disgust", "celebv_hq", "disgusted"),
    ("angry", "celebv_hq", "angry"),  # an adjective variant, through the common spellings
    ("pleasure", "generic", "happy"),  # spec D2's example
    ("bored", "celebv_hq", "others"),  # spec D2: unclear -> others
    (None, "mead", None), ("  ", "mead", None),  # no label = unlabelled, not "others"
])
def test_map_emotion(raw, table, expected):
    assert common.map_emotion(raw, common.LABEL_TABLES[table]) == expected


def test_contempt_can_be_mapped_to_disgusted_but_only_to_a_paper_class():
    assert common.map_emotion("contempt", common.contempt_table(common.MEAD_EMOTIONS, "disgusted")) == "disgusted"
    with pytest.raises(ValueError):
        common.contempt_table(common.MEAD_EMOTIONS, "contempt")


@pytest.mark.parametrize("kind", sorted(READERS))
def test_missing_root_file_root_and_foreign_layout_raise_memo_zoo_error(kind, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(MemoZooError, match="does not exist") as caught:
        read(kind, missing)
    assert str(missing) in str(caught.value)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(MemoZooError, match="not a folder"):
        read(kind, a_file)
    # Something that is no dataset layout: a text file and an oddly named clip one level down.
    foreign = tmp_path / "foreign"
    (foreign / "random").mkdir(parents=True)
    (foreign / "notes.txt").write_text("hello")
    fx.write_clip(foreign / "random" / "clip.mp4")
    with pytest.raises(MemoZooError) as caught:
        read(kind, foreign)
    message = str(caught.value)
    assert str(foreign) in message and "expected" in message


def test_unreadable_root_raises(tmp_path, monkeypatch):
    # Tests may run as root, who reads any folder; so the refusal is simulated where it is seen.
    root = fx.build_video_folder(tmp_path / "v")
    monkeypatch.setattr(common.os, "access", lambda path, mode: False)
    with pytest.raises(MemoZooError, match="cannot be read") as caught:
        read("video_folder", root)
    assert str(root) in str(caught.value)
    monkeypatch.undo()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(root / "sub"))

    monkeypatch.setattr(video_folder, "sorted_files", refuse)
    with pytest.raises(MemoZooError, match="Permission denied"):
        read("video_folder", root)


def test_clips_are_sorted_cached_and_every_skip_is_reported_with_the_stage(tmp_path):
    root = fx.build_voxceleb2_tree(tmp_path / "vox")
    dataset, clips = read("voxceleb2", root)
    assert [c.clip_id for c in clips] == sorted(c.clip_id for c in clips)
    assert dataset.clips() == clips and dataset.clips() is not clips  # a copy: callers may mutate it
    assert {s.stage for s in dataset.skipped} == {"dataset:voxceleb2"}


def test_probe_false_opens_nothing_but_still_reports_missing_files(tmp_path):
    root = fx.build_video_folder(tmp_path / "v")
    dataset, clips = read("video_folder", root, probe=False)
    # Without probing, the empty / silent / audio-only files are not opened, so they are listed.
    assert [c.clip_id for c in clips] == ["a", "b", "drift", "empty", "silent", "voice"]
    assert all(c.fps is None and c.frame_count is None for c in clips)
    vox = fx.build_voxceleb2_tree(tmp_path / "vox")
    dataset, clips = read("voxceleb2", vox, probe=False)
    assert "test/mp4/id00017/ytA1/00002.mp4" in reasons(dataset, vox)


# --- memo_layout ------------------------------------------------------------------------------

def test_memo_layout_reads_metadata_and_checks_audio_embedding_frames(tmp_path):
    root = fx.build_memo_tree(tmp_path / "memo")
    dataset, clips = read("memo_layout", root)
    clips = by_id(clips)
    assert list(clips) == ["alpha", "gamma"]  # relative and absolute metadata paths both resolve
    alpha = clips["alpha"]
    assert alpha.video == root / "data/video/alpha.mp4" and alpha.audio is None
    assert alpha.embeddings == {kind: root / "data/embedding" / kind / "alpha.pt" for kind in fx.MEMO_KINDS}
    assert (alpha.fps, alpha.frame_count) == (25.0, 16)
    why = reasons(dataset, root)
    assert "12 frames" in why["data/embedding/audio_emb/beta.pt"] and "16" in why["data/embedding/audio_emb/beta.pt"]
    assert "face_emb" in why["data/video/delta.mp4"]
    assert "cannot be opened as media" in why["data/video/broken.mp4"]
    assert "not valid JSON" in why["metadata.jsonl:6"] and "no 'video'" in why["metadata.jsonl:7"]


def test_memo_layout_frame_check_can_be_relaxed_or_disabled(tmp_path):
    root = fx.build_memo_tree(tmp_path / "memo")
    assert "beta" in by_id(read("memo_layout", root, frame_tolerance=4)[1])
    assert "beta" in by_id(read("memo_layout", root, check_audio_frames=False)[1])


def test_memo_layout_without_metadata_scans_data_video_and_accepts_the_data_folder_as_root(tmp_path):
    root = fx.build_memo_tree(tmp_path / "memo")
    (root / "metadata.jsonl").unlink()
    assert list(by_id(read("memo_layout", root)[1])) == ["alpha", "gamma"]
    assert list(by_id(read("memo_layout", root / "data")[1])) == ["alpha", "gamma"]


def test_memo_layout_rejects_unloadable_embeddings_and_a_missing_custom_metadata(tmp_path):
    root = fx.build_memo_tree(tmp_path / "memo")
    (root / "data/embedding/audio_emb/alpha.pt").write_bytes(b"not a tensor file")
    dataset, clips = read("memo_layout", root)
    assert "alpha" not in by_id(clips)
    assert "cannot be loaded" in reasons(dataset, root)["data/embedding/audio_emb/alpha.pt"]
    with pytest.raises(MemoZooError, match="other.jsonl"):
        read("memo_layout", root, metadata="other.jsonl")
    with pytest.raises(ValidationError):
        memo_layout.MemoLayoutConfig(required_embeddings=["lips"])


def test_embedding_frames_understands_the_usual_containers():
    import torch

    assert memo_layout.embedding_frames(torch.zeros(7, 12, 768)) == 7
    assert memo_layout.embedding_frames({"audio_emb": torch.zeros(5, 3)}) == 5
    assert memo_layout.embedding_frames({"x": torch.zeros(4)}) == 4
    assert memo_layout.embedding_frames([torch.zeros(3)] * 6) == 6
    assert memo_layout.embedding_frames(torch.tensor(1.0)) is None


# --- hallo_layout -----------------------------------------------------------------------------

def test_hallo_scan_finds_frames_masks_embeddings_and_wav(tmp_path):
    root = fx.build_hallo_tree(tmp_path / "hallo")
    dataset, clips = read("hallo_layout", root)
    (s1,) = clips
    assert s1.clip_id == "s1" and s1.audio == root / "audios/s1.wav" and s1.video == root / "videos/s1.mp4"
    assert s1.embeddings["images"] == root / "images/s1"
    assert set(s1.embeddings) == {"images", "face_emb", "audio_emb", *fx.HALLO_MASKS}
    why = reasons(dataset, root)
    assert "audios/s2.wav" in why["videos/s2.mp4"] and "max_av_offset" in why["videos/s2.mp4"]
    assert why["videos/s3.mp4"] == "empty file"


def test_hallo_meta_files_of_both_stages_relocate_moved_paths(tmp_path):
    root = fx.build_hallo_tree(tmp_path / "hallo")
    dataset, clips = read("hallo_layout", root, meta="hallo_stage2.json")
    assert [c.clip_id for c in clips] == ["s1"]
    assert clips[0].video == root / "videos/s1.mp4" and clips[0].embeddings["audio_emb"] == root / "audio_emb/s1.pt"
    why = reasons(dataset, root)
    assert "not a JSON object" in why["hallo_stage2.json[2]"]
    assert "neither video_path nor image_path" in why["hallo_stage2.json[3]"]
    dataset, clips = read("hallo_layout", root, meta=str(root / "hallo_stage1.json"))
    assert [(c.clip_id, c.video) for c in clips] == [("s1", root / "videos/s1.mp4")]
    with pytest.raises(MemoZooError, match="missing.json"):
        read("hallo_layout", root, meta="missing.json")


def test_hallo_required_kinds_and_length_check_option(tmp_path):
    root = fx.build_hallo_tree(tmp_path / "hallo")
    dataset, _ = read("hallo_layout", root, required=["audio_emb"])
    assert "audio_emb" in reasons(dataset, root)["videos/s2.mp4"]
    assert [c.clip_id for c in read("hallo_layout", root, max_av_offset=None)[1]] == ["s1", "s2"]


# --- video_folder -----------------------------------------------------------------------------

def test_video_folder_skips_every_kind_of_unusable_file_with_its_reason(tmp_path):
    root = fx.build_video_folder(tmp_path / "v")
    dataset, clips = read("video_folder", root)
    assert [c.clip_id for c in clips] == ["a", "b"]
    assert clips[0].audio is None and clips[0].speaker is None and clips[0].emotion is None
    why = reasons(dataset, root)
    assert why["empty.mp4"] == "empty file"
    assert "no audio track" in why["silent.mp4"]
    assert why["voice.mp4"] == "has no video stream"
    assert "the audio track of" in why["drift.mp4"] and "2.000 s" in why["drift.mp4"]
    assert set(why) == {"empty.mp4", "silent.mp4", "voice.mp4", "drift.mp4"}


def test_video_folder_recursive_pattern_and_require_audio_options(tmp_path):
    root = fx.build_video_folder(tmp_path / "v")
    assert [c.clip_id for c in read("video_folder", root, recursive=True)[1]] == ["a", "b", "sub/c"]
    assert [c.clip_id for c in read("video_folder", root, pattern="*.mov")[1]] == ["other"]
    assert "silent" in by_id(read("video_folder", root, require_audio=False)[1])


# --- hdtf -------------------------------------------------------------------------------------

def test_hdtf_speakers_from_both_naming_schemes(tmp_path):
    root = fx.build_hdtf_tree(tmp_path / "hdtf")
    dataset, clips = read("hdtf", root)
    assert {c.clip_id: c.speaker for c in clips} == {
        "JohnDoe_002": "JohnDoe", "RD/RD_Radio1_001": "Radio1", "WDA_BarackObama_000": "BarackObama",
        "WRA_Kamala_Harris_000_3": "Kamala_Harris"}
    why = reasons(dataset, root)
    assert "<subset>_<name>_<idx>" in why["intro.mp4"]
    assert "cannot be opened" in why["WDA_Broken_001.mp4"]
    assert "RD/RD_Radio1_001" not in by_id(read("hdtf", root, recursive=False)[1])


@pytest.mark.parametrize("stem, expected", [
    ("WDA_BarackObama_000", ("WDA", "BarackObama", "000")),
    ("JohnDoe_002", (None, "JohnDoe", "002")),
    ("WDA_BarackObama_000_3", ("WDA", "BarackObama", "3")),
    ("WRA_Kamala_Harris_12", ("WRA", "Kamala_Harris", "12")),
    ("intro", None),
])
def test_hdtf_parse_name(stem, expected):
    assert hdtf.parse_name(stem, ["RD", "WDA", "WRA"]) == expected


# --- voxceleb2 --------------------------------------------------------------------------------

def test_voxceleb2_pairs_the_aac_tree_and_reports_missing_audio(tmp_path):
    root = fx.build_voxceleb2_tree(tmp_path / "vox")
    dataset, clips = read("voxceleb2", root)
    clips = by_id(clips)
    assert list(clips) == ["test/id00017/ytA1/00001", "test/id00018/ytB2/00001"]
    first = clips["test/id00017/ytA1/00001"]
    assert first.speaker == "id00017" and first.audio == root / "test/aac/id00017/ytA1/00001.m4a"
    why = reasons(dataset, root)
    assert why["test/mp4/id00017/ytA1/00002.mp4"] == f"audio file {root}/test/aac/id00017/ytA1/00002.m4a not found"
    assert "00001.m4a lasts 2.000 s" in why["test/mp4/id00019/ytE5/00001.mp4"]
    assert "not a VoxCeleb id" in why["test/mp4/misc/ytC3/00001.mp4"]


def test_voxceleb2_split_muxed_audio_and_split_folder_as_root(tmp_path):
    root = fx.build_voxceleb2_tree(tmp_path / "vox")
    assert [c.clip_id for c in read("voxceleb2", root, split="dev")[1]] == ["dev/id00001/ytD4/00001"]
    muxed = by_id(read("voxceleb2", root, audio="muxed")[1])
    assert "test/id00017/ytA1/00002" in muxed and muxed["test/id00017/ytA1/00002"].audio is None
    # The test archives unpack without a split folder; a folder named dev / test gives its name.
    assert [c.clip_id for c in read("voxceleb2", root / "dev")[1]] == ["dev/id00001/ytD4/00001"]
    with pytest.raises(MemoZooError, match="test/mp4"):
        read("voxceleb2", root / "dev" / "aac")


# --- mead -------------------------------------------------------------------------------------

def test_mead_labels_intensity_view_and_skips(tmp_path):
    root = fx.build_mead_tree(tmp_path / "mead")
    dataset, clips = read("mead", root)
    table = {c.clip_id: (c.speaker, c.emotion, c.source_emotion, c.intensity, c.view) for c in clips}
    assert table == {
        "M003/front/angry/level_1/001": ("M003", "angry", "angry", 1, "front"),
        "M003/front/contempt/level_2/001": ("M003", "others", "contempt", 2, "front"),
        "M003/front/fear/level_3/002": ("M003", "fearful", "fear", 3, "front"),
        "W009/front/neutral/level_1/001": ("W009", "neutral", "neutral", 1, "front"),
    }
    assert by_id(clips)["M003/front/angry/level_1/001"].audio == root / "M003/audio/angry/level_1/001.m4a"
    why = reasons(dataset, root)
    assert "not a MEAD emotion" in why["M003/video/front/bored/level_1/001.mp4"]
    assert "M003/audio/sad/level_1/003.m4a not found" in why["M003/video/front/sad/level_1/003.mp4"]
    assert "not level_<n>" in why["M003/video/front/sad/lvl1/004.mp4"]


def test_mead_options(tmp_path):
    root = fx.build_mead_tree(tmp_path / "mead")
    disgusted = by_id(read("mead", root, contempt_as="disgusted")[1])
    assert disgusted["M003/front/contempt/level_2/001"].emotion == "disgusted"
    views = by_id(read("mead", root, views=["front", "left_30"])[1])
    assert views["M003/left_30/happy/level_1/001"].view == "left_30"
    assert set(by_id(read("mead", root, levels=[1])[1])) == {"M003/front/angry/level_1/001",
                                                               "W009/front/neutral/level_1/001"}
    assert list(by_id(read("mead", root, emotions=["angry"])[1])) == ["M003/front/angry/level_1/001"]
    assert "M003/front/sad/level_1/003" in by_id(read("mead", root, audio="muxed")[1])
    with pytest.raises(ValidationError):
        mead.MeadConfig(emotions=["fearful"])  # a paper class, not a MEAD folder name
    with pytest.raises(MemoZooError, match="nothing found"):
        read("mead", root, views=["top"])


# --- celebv_hq --------------------------------------------------------------------------------

def test_celebv_hq_maps_labels_and_reports_missing_corrupt_and_unlisted_clips(tmp_path):
    root = fx.build_celebv_hq_tree(tmp_path / "celebv")
    dataset, clips = read("celebv_hq", root)
    assert {c.clip_id: (c.emotion, c.source_emotion, c.speaker) for c in clips} == {
        "ytAAA_0": ("happy", "happy", "ytAAA"),
        "ytAAA_1": ("angry", "anger", "ytAAA"),  # the segment covering the most time
        "ytBBB_0": ("others", "contempt", "ytBBB"),
        "ytBBB_1": ("sad", "Sadness", "ytBBB"),
        "ytCCC_0": ("others", "bored", "ytCCC"),
    }
    why = reasons(dataset, root)
    assert "file is missing" in why["processed/ytCCC_1.mp4"]
    assert "cannot be opened" in why["processed/ytDDD_0.mp4"]
    assert "not listed" in why["processed/extra_9.mp4"]


def test_celebv_hq_options(tmp_path):
    root = fx.build_celebv_hq_tree(tmp_path / "celebv")
    assert by_id(read("celebv_hq", root, mixed_emotion="first")[1])["ytAAA_1"].emotion == "neutral"
    assert by_id(read("celebv_hq", root, mixed_emotion="unlabelled")[1])["ytAAA_1"].emotion is None
    assert by_id(read("celebv_hq", root, contempt_as="disgusted")[1])["ytBBB_0"].emotion == "disgusted"
    assert by_id(read("celebv_hq", root, speaker_from_ytb_id=False)[1])["ytAAA_0"].speaker is None
    dataset, _ = read("celebv_hq", root, report_missing=False)
    assert "processed/ytCCC_1.mp4" not in reasons(dataset, root)
    assert len(read("celebv_hq", root, clip_dir=str(root / "processed"))[1]) == 5
    (root / "celebvhq_info.json").write_text('{"meta_info": {}}')
    with pytest.raises(MemoZooError, match="no 'clips'"):
        read("celebv_hq", root)


@pytest.mark.parametrize("emotion, mixed, expected", [
    ({"sep_flag": False, "labels": "fear"}, "longest", "fear"),
    ({"sentiment": "positive"}, "longest", None),  # a sentiment is no emotion class
    ({"categorical": "surprise"}, "longest", "surprise"),
    ({"labels": [{"emotion": "sad", "start_sec": 0, "end_sec": 1},
                 {"emotion": "happy", "start_sec": 1, "end_sec": 1.5}]}, "longest", "sad"),
    ({"labels": [{"emotion": "sad", "start_sec": 0, "end_sec": 1}]}, "unlabelled", "sad"),
    ("neutral", "longest", "neutral"),
    (None, "longest", None),
])
def test_celebv_hq_clip_label(emotion, mixed, expected):
    assert celebv_hq.clip_label(emotion, mixed) == expected
