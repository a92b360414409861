"""The pipeline runner (spec §7): stage protocol, report, MEMO-layout manifest, resume, bad clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.data.media import read_audio, read_frames, write_video
from memo_zoo.data.pipeline import (
    MANIFEST_FILE,
    REPORT_FILE,
    StageResult,
    clip_stem,
    load_clip,
    run_pipeline,
    write_clip,
)
from memo_zoo.errors import MemoZooError

FPS = 10.0


class ListDataset:
    """The smallest ``ClipDataset``: a fixed list of clips and of skipped files."""

    def __init__(self, clips, skipped=()):
        self._clips = list(clips)
        self.skipped = list(skipped)

    def clips(self):
        return list(self._clips)


def make_clip(folder: Path, name: str, shade: int, frames: int = 4, audio: bool = True, **labels) -> ClipRecord:
    video = np.full((frames, 16, 16, 3), shade, dtype=np.uint8)
    sound = np.full(int(frames / FPS * 16000), 0.1, dtype=np.float32) if audio else None
    path = write_video(folder / f"{name}.mp4", video, FPS, sound)
    return ClipRecord(name, path, speaker=labels.get("speaker", "spk"), emotion=labels.get("emotion", "happy"))


class Split:
    """Writes each clip's two halves as new clips (``<id>#0``, ``<id>#1``); drops ids ending in 'x'."""

    name = "split"

    def __init__(self, calls: list):
        self.calls = calls

    def process(self, clip, out_dir):
        self.calls.append((self.name, clip.clip_id))
        if clip.clip_id.endswith("x"):
            return StageResult.drop("unwanted", 1.5)
        frames, fps, audio = load_clip(clip)
        half = len(frames) // 2
        return StageResult.keep(
            write_clip(clip, out_dir, frames[:half], fps, audio[: len(audio) // 2], clip_id=f"{clip.clip_id}#0"),
            write_clip(clip, out_dir, frames[half:], fps, audio[len(audio) // 2:], clip_id=f"{clip.clip_id}#1"))


class Check:
    """Keeps first halves unchanged, drops second halves with a measured value."""

    name = "check"

    def __init__(self, calls: list):
        self.calls = calls

    def process(self, clip, out_dir):
        self.calls.append((self.name, clip.clip_id))
        if clip.clip_id.endswith("#1"):
            return StageResult.drop("second half", 2.0)
        return StageResult.keep(clip)


class KillAfter:
    """Wraps a stage; the (limit+1)-th call raises before the stage runs (a kill mid-run)."""

    def __init__(self, stage, limit: int, counter: list):
        self.stage, self.limit, self.counter = stage, limit, counter
        self.name = stage.name

    def process(self, clip, out_dir):
        self.counter.append(clip.clip_id)
        if len(self.counter) > self.limit:
            raise KeyboardInterrupt("killed")
        return self.stage.process(clip, out_dir)


def manifest(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / MANIFEST_FILE).read_text().splitlines()]


def report(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / REPORT_FILE).read_text().splitlines()]


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "in"
    return [make_clip(folder, "a", 40), make_clip(folder, "bx", 90), make_clip(folder, "c", 160, speaker="s2")]


def test_stage_result_rules():
    clip = ClipRecord("a", Path("a.mp4"))
    assert StageResult.keep(clip).clips == (clip,)
    assert StageResult.drop("no face", 0).value == 0.0
    with pytest.raises(ValueError, match="at least one output"):
        StageResult(True)
    with pytest.raises(ValueError, match="reason"):
        StageResult(False)


def test_clip_stems_are_flat_and_unique():
    assert clip_stem("abc_1") == "abc_1"
    a, b = clip_stem("M003/front/001"), clip_stem("M003_front/001")
    assert "/" not in a and a != b and a.startswith("M003_front_001-")


def test_pipeline_writes_report_manifest_and_counts(tmp_path, clips):
    calls = []
    skipped = [SkippedClip("in/broken.mp4", "dataset", "unreadable header")]
    result = run_pipeline(ListDataset(clips, skipped), [Split(calls), Check(calls)], tmp_path / "out")

    assert {k: (c.seen, c.kept, c.dropped, c.outputs) for k, c in result.counts.items()} == {
        "split": (3, 2, 1, 4), "check": (4, 2, 2, 2), "manifest": (2, 2, 0, 2)}
    entries = manifest(tmp_path / "out")
    assert [e["clip_id"] for e in entries] == ["a#0", "c#0"]
    assert [e["speaker"] for e in entries] == ["spk", "s2"] and entries[0]["emotion"] == "happy"
    for entry in entries:  # MEMO layout: videos under data/video, paths relative to metadata.jsonl
        assert entry["video"].startswith("data/video/")
        frames, _ = read_frames(tmp_path / "out" / entry["video"])
        assert len(frames) == 2
        assert len(read_audio(tmp_path / "out" / entry["video"])) > 0  # audio muxed in
    lines = report(tmp_path / "out")
    drops = [line for line in lines if not line["kept"]]
    assert {(d["stage"], d["clip"], d["reason"]) for d in drops} == {
        ("dataset", "in/broken.mp4", "unreadable header"), ("split", "bx", "unwanted"),
        ("check", "a#1", "second half"), ("check", "c#1", "second half")}
    assert all(d["stage"] and d["reason"] for d in drops)
    assert {(d.stage, d.reason) for d in result.dropped} >= {("split", "unwanted"), ("dataset", "unreadable header")}
    split_a = next(line for line in lines if line["stage"] == "split" and line["clip"] == "a")
    assert [o["clip_id"] for o in split_a["outputs"]] == ["a#0", "a#1"]
    assert next(line for line in lines if line["clip"] == "bx")["value"] == 1.5


def test_resume_after_a_kill_processes_nothing_twice_and_matches_an_uninterrupted_run(tmp_path, clips):
    reference = run_pipeline(ListDataset(clips), [Split([]), Check([])], tmp_path / "whole")

    calls, counter = [], []
    stages = [Split(calls), KillAfter(Check(calls), 2, counter)]
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(ListDataset(clips), stages, tmp_path / "out")
    finished = list(calls)
    assert finished == [("split", "a"), ("check", "a#0"), ("check", "a#1"), ("split", "bx"), ("split", "c")]

    calls.clear()
    resumed = run_pipeline(ListDataset(clips), [Split(calls), Check(calls)], tmp_path / "out")
    assert calls == [("check", "c#0"), ("check", "c#1")]  # only what the kill left undone
    assert not set(calls) & set(finished)
    assert resumed.processed == 3  # the two checks, and publishing c#0 (a#0 was published before the kill)
    assert manifest(tmp_path / "out") == manifest(tmp_path / "whole")
    assert {k: vars(c) for k, c in resumed.counts.items()} == {k: vars(c) for k, c in reference.counts.items()}

    calls.clear()
    again = run_pipeline(ListDataset(clips), [Split(calls), Check(calls)], tmp_path / "out")
    assert calls == [] and again.processed == 0
    per_pair = {}
    for line in report(tmp_path / "out"):
        per_pair[(line["stage"], line["clip"])] = per_pair.get((line["stage"], line["clip"]), 0) + 1
    assert set(per_pair.values()) == {1}  # one line per clip per stage


def test_resume_false_starts_over_and_other_stages_are_refused(tmp_path, clips):
    calls = []
    run_pipeline(ListDataset(clips), [Split(calls), Check(calls)], tmp_path / "out")
    with pytest.raises(MemoZooError, match="other stages"):
        run_pipeline(ListDataset(clips), [Split(calls)], tmp_path / "out")
    calls.clear()
    run_pipeline(ListDataset(clips), [Split(calls)], tmp_path / "out", resume=False)
    assert len(calls) == 3
    assert {e["clip_id"] for e in manifest(tmp_path / "out")} == {"a#0", "a#1", "c#0", "c#1"}


def test_a_cut_report_line_is_repaired_and_its_clip_redone(tmp_path, clips):
    calls = []
    run_pipeline(ListDataset(clips), [Split(calls)], tmp_path / "out")
    path = tmp_path / "out" / REPORT_FILE
    text = path.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    path.write_text(text[: len(text) - len(last) - 1] + last[:20])  # a kill in the middle of a line
    calls.clear()
    run_pipeline(ListDataset(clips), [Split(calls)], tmp_path / "out")
    assert all(json.loads(line) for line in path.read_text().splitlines())
    assert calls == []  # the cut line was a manifest copy; it was redone without running the stage


def test_a_bad_clip_is_dropped_with_the_media_error(tmp_path, clips):
    broken = tmp_path / "in" / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    dataset = ListDataset([ClipRecord("broken", broken), *clips])
    result = run_pipeline(dataset, [Split([])], tmp_path / "out")
    bad = next(line for line in report(tmp_path / "out") if line["clip"] == "broken")
    assert bad["stage"] == "split" and not bad["kept"] and "cannot be opened" in bad["reason"]
    assert len(result.clips) == 4


def test_separate_audio_is_muxed_into_the_published_video(tmp_path):
    folder = tmp_path / "in"
    silent = make_clip(folder, "v", 100, frames=6, audio=False)
    voice = write_video(folder / "voice.mp4", np.zeros((6, 16, 16, 3), np.uint8), FPS,
                        np.full(9600, 0.2, np.float32))
    clip = ClipRecord("v", silent.video, audio=voice)
    result = run_pipeline(ListDataset([clip]), [], tmp_path / "out")
    published = result.clips[0].video
    assert published.parent == tmp_path / "out" / "data" / "video"
    assert len(read_audio(published)) >= 9000


def test_nothing_left_raises_after_writing_the_report(tmp_path, clips):
    class DropAll:
        name = "drop_all"

        def process(self, clip, out_dir):
            return StageResult.drop("never good enough", 0.0)

    with pytest.raises(MemoZooError, match="no clip survived.*drop_all: 3 dropped"):
        run_pipeline(ListDataset(clips), [DropAll()], tmp_path / "out")
    assert len(report(tmp_path / "out")) == 3
    with pytest.raises(MemoZooError, match="no usable clip"):
        run_pipeline(ListDataset([]), [DropAll()], tmp_path / "empty")


def test_repeated_stage_names_get_numbered_and_max_clips_limits(tmp_path, clips):
    class Keep:
        name = "keep"

        def process(self, clip, out_dir):
            return StageResult.keep(clip)

    result = run_pipeline(ListDataset(clips), [Keep(), Keep()], tmp_path / "out", max_clips=2)
    assert list(result.counts) == ["keep_1", "keep_2", "manifest"]
    assert result.counts["keep_2"].seen == 2
