"""talking_world generator, truth and dataset component (issue 4).

The embedded default dataset must (a) be written in MEMO's own layout (spec §11) so that the same
readers serve it and real data, (b) carry exact per-frame truth whose lip sync, emotion (spec E4)
and length claims hold in the files actually written (spec §0: lips in sync, expression following
the audio's emotion; spec D3: 16 kHz mono audio), and (c) be deterministic, resumable and split
by speaker. Worlds here are tiny (2 identities x 2 clips of 1-2 s at 32 px) so the module runs in
seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

from memo_zoo.data import media
from memo_zoo.data.media import AUDIO_RATE
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.datasets.readers.memo_layout import MemoLayoutConfig, MemoLayoutDataset
from memo_zoo_plugins.datasets.talking_world import plugin as tw_plugin
from memo_zoo_plugins.datasets.talking_world import world as world_mod
from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld, TalkingWorldConfig
from memo_zoo_plugins.datasets.talking_world.face import MAX_POSE
from memo_zoo_plugins.datasets.talking_world.truth import FRAME_FIELDS, load_truth
from memo_zoo_plugins.datasets.talking_world.visemes import energy_track
from memo_zoo_plugins.datasets.talking_world.world import WorldConfig, generate, plan_clips, world_root

TINY = dict(identities=2, clips_per_identity=2, seconds=(1.0, 2.0), long_clips=0, size=32, test_identities=1)
METADATA_KEYS = {"video", "clip_id", "speaker", "emotion", "emotions", "text", "voice", "split", "truth",
                 "duration", "frames", "fps", "size", "tier", "identity"}


def _entries(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate(WorldConfig(root=tmp_path_factory.mktemp("tw") / "world", workers=1, **TINY), progress=False)


# ------------------------------------------------------------------------------------ config


def test_default_config_builds_without_touching_the_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    config = WorldConfig()
    assert config.root is None and config.workers == 2 and config.fps == 25 and config.size == 64
    assert config.emotions == list(PAPER_LABELS)  # spec E4, in order
    assert not (tmp_path / "cache").exists()
    root = world_root(config)
    assert root.parent == tmp_path / "cache" / "talking_world"
    assert not (tmp_path / "cache").exists()
    # The folder name hashes what changes the output: the worker count and the dataset split don't.
    assert world_root(WorldConfig(workers=1)) == root
    assert world_root(TalkingWorldConfig(split="test")) == root
    assert world_root(WorldConfig(seed=1)) != root
    assert "kind" not in WorldConfig.model_fields
    assert all(f.description for f in TalkingWorldConfig.model_fields.values())


@pytest.mark.parametrize("bad", [
    {"size": 33}, {"size": 16}, {"fps": 24}, {"emotions": ["joy"]}, {"emotions": []},
    {"voices": ["robot"]}, {"test_identities": 12}, {"seconds": (5.0, 2.0)}, {"kind": "talking_world"},
])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        WorldConfig(**bad)


def test_plan_is_speaker_split_and_covers_every_kind():
    config = WorldConfig(identities=5, clips_per_identity=3, long_clips=3, test_identities=2, photo_fraction=0.25)
    plans = plan_clips(config)
    assert plans == plan_clips(config)  # a pure function of the config
    assert [p.clip_id for p in plans] == sorted(p.clip_id for p in plans)
    assert len({p.clip_id for p in plans}) == len(plans)
    assert sum(p.kind == "regular" for p in plans) == 15 and sum(p.kind == "long" for p in plans) == 3
    assert sum(p.kind == "photo" for p in plans) == 5  # 5 / (15 + 5) = 0.25 of the regular clips
    splits = {p.speaker: p.split for p in plans}
    assert {s for s, split in splits.items() if split == "test"} == {"tw_id003", "tw_id004"}
    assert {p.split for p in plans if p.kind == "long"} == {"train", "test"}  # long clips on held-out speakers too
    voices = {}
    for p in plans:
        assert voices.setdefault(p.speaker, p.voice) == p.voice  # one voice per identity


# ------------------------------------------------------------------------------------ layout


def test_layout_is_memos_and_the_memo_layout_reader_reads_it(tiny):
    assert (tiny / "world.json").is_file()
    entries = _entries(tiny)
    assert len(entries) == 4
    for e in entries:
        assert set(e) == METADATA_KEYS
        assert e["video"] == f"data/video/{e['clip_id']}.mp4" and (tiny / e["video"]).is_file()
        assert e["truth"] == f"data/truth/{e['clip_id']}.npz" and (tiny / e["truth"]).is_file()
        assert 1.0 <= e["duration"] <= 2.0 and e["frames"] == round(e["duration"] * e["fps"])
    # MEMO's layout (spec §11); the embeddings are computed later by preprocessing, so none is required.
    reader = MemoLayoutDataset(MemoLayoutConfig(root=tiny, required_embeddings=[]))
    records = reader.clips()
    assert reader.skipped == []
    assert [r.clip_id for r in records] == [e["clip_id"] for e in entries]
    for r, e in zip(records, entries):
        assert (r.speaker, r.emotion, r.frame_count, r.fps) == (e["speaker"], e["emotion"], e["frames"], 25.0)


def test_workers_do_not_change_a_byte(tiny, tmp_path):
    root = generate(WorldConfig(root=tmp_path / "w2", workers=2, **TINY), progress=False)
    assert _files(root) == _files(tiny)


def test_audio_and_video_have_the_truths_length(tiny):
    for e in _entries(tiny):
        path = tiny / e["video"]
        frames, fps = media.read_frames(path)
        assert len(frames) == e["frames"] == load_truth(tiny / e["truth"]).frames and fps == 25.0
        assert frames.shape[1:] == (32, 32, 3)
        with av.open(str(path)) as container:
            audio, video = container.streams.audio[0], container.streams.video[0]
            assert audio.codec_context.sample_rate == AUDIO_RATE and audio.codec_context.channels == 1  # spec D3
            # Exactly the video's length in the container; the decoder adds only AAC's last-frame padding.
            assert audio.duration * audio.time_base == video.duration * video.time_base == e["duration"]
        decoded = media.read_audio(path)
        assert e["frames"] * 640 <= len(decoded) < e["frames"] * 640 + 1024


def test_truth_has_one_row_per_frame_in_range(tiny):
    for e in _entries(tiny):
        t = load_truth(tiny / e["truth"])
        for name in FRAME_FIELDS:
            assert getattr(t, name).shape == (e["frames"],), name
        assert (t.clip_id, t.speaker, t.voice, t.fps, t.size, t.tier) == (
            e["clip_id"], e["speaker"], e["voice"], 25.0, 32, "cartoon")
        assert t.identity == int(e["speaker"][-3:]) and t.text == e["text"] and t.text
        assert np.abs(t.pose).max() <= MAX_POSE and 0 <= t.blink.min() and t.blink.max() <= 1
        for name in ("mouth_open", "mouth_width", "mouth_round", "intensity"):
            assert 0 <= getattr(t, name).min() and getattr(t, name).max() <= 1, name
        assert t.mouth_area.min() >= 0 and t.mouth_area.max() > 0
        assert np.all(t.word_start < t.duration) and np.all(np.diff(t.phoneme_start) >= 0)


def test_lips_move_with_the_muxed_audio(tiny):
    # Lip sync in the written files: the rendered inner-mouth area follows the energy of the
    # audio decoded from the same MP4, at lag 0 and not at a 10-frame (0.4 s) shift.
    areas, energies = [], []
    for e in _entries(tiny):
        t = load_truth(tiny / e["truth"])
        audio = media.read_audio(tiny / e["video"])[: e["frames"] * 640]
        energy = energy_track(audio, AUDIO_RATE, 25, e["frames"])
        assert np.corrcoef(energy, t.energy)[0, 1] > 0.99  # the truth's energy is the muxed audio's
        areas.append((t.mouth_area - t.mouth_area.mean()) / t.mouth_area.std())
        energies.append((energy - energy.mean()) / energy.std())

    def pooled(lag: int) -> float:
        a = [x[max(lag, 0): len(x) + min(lag, 0)] for x in areas]
        b = [y[max(-lag, 0): len(y) + min(-lag, 0)] for y in energies]
        return float(np.corrcoef(np.concatenate(a), np.concatenate(b))[0, 1])

    at0 = pooled(0)
    assert at0 > 0.3
    assert at0 > pooled(10) and at0 > pooled(-10)


def test_emotion_truth_follows_the_speech_and_matches_metadata(tmp_path):
    # Every clip changes emotion once (probability 1): the per-frame labels must follow the
    # metadata's segments, the face must fade through the change, and the clip label is the
    # most frequent frame label (spec E5).
    root = generate(WorldConfig(root=tmp_path / "w", identities=1, clips_per_identity=1, seconds=(5.0, 6.0),
                                long_clips=0, size=32, test_identities=0, workers=1, emotion_change_probability=1.0,
                                emotions=["happy", "sad", "angry"], seed=3), progress=False)
    (e,) = _entries(root)
    t = load_truth(root / e["truth"])
    assert len(e["emotions"]) == 2 and e["emotions"][0]["emotion"] != e["emotions"][1]["emotion"]
    assert e["emotions"][0]["start"] == 0 and e["emotions"][-1]["end"] == e["duration"]
    names = t.emotion_names()
    for i, time in enumerate(t.times):
        seg = next(s for s in e["emotions"] if s["start"] <= time < s["end"] or s is e["emotions"][-1])
        assert names[i] == seg["emotion"]
    change = int(np.argmax(t.emotion != t.emotion[0]))
    assert t.intensity[change - 1] < 0.3 and t.intensity[change] < 0.3  # faded out and back in
    assert t.intensity[0] >= 0.6 and t.intensity[-1] >= 0.6
    assert e["emotion"] == t.dominant_emotion() == max(set(names), key=names.count)
    assert set(names) <= {"happy", "sad", "angry"}


def test_tiny_metadata_emotion_is_the_dominant_frame_label(tiny):
    for e in _entries(tiny):
        t = load_truth(tiny / e["truth"])
        assert e["emotion"] == t.dominant_emotion()
        assert {s["emotion"] for s in e["emotions"]} == set(t.emotion_names())


def test_long_clip_photo_tier_and_30_fps(tmp_path):
    root = generate(WorldConfig(root=tmp_path / "w", identities=1, clips_per_identity=1, seconds=(1.0, 1.5),
                                long_clips=1, long_seconds=2.0, photo_fraction=0.5, fps=30, size=32,
                                test_identities=0, workers=1, seed=1), progress=False)
    entries = {e["clip_id"]: e for e in _entries(root)}
    assert set(entries) == {"tw_id000_c00", "tw_id000_long00", "tw_photo_c000"}
    assert entries["tw_id000_long00"]["duration"] == 2.0
    photo = entries["tw_photo_c000"]
    assert (photo["tier"], photo["speaker"], photo["identity"], photo["split"]) == ("photo", "tw_photo", -1, "train")
    for e in entries.values():
        assert e["frames"] % 3 == 0  # at 30 fps only multiples of 3 frames last whole 16 kHz samples
        t = load_truth(root / e["truth"])
        assert t.frames == e["frames"] and t.fps == 30.0
        assert t.mouth_area.max() > 0 and np.corrcoef(t.mouth_area, t.mouth_open)[0, 1] > 0.5


# ------------------------------------------------------------------------------------ resume


def test_a_deleted_clip_is_the_only_one_regenerated(tiny, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny, root)
    victim = _entries(root)[1]
    (root / victim["video"]).unlink()
    (root / "metadata.jsonl").unlink()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    generate(WorldConfig(root=root, workers=1, **TINY), progress=False)
    changed = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and before.get(p) != p.stat().st_mtime_ns}
    assert changed == {victim["video"], victim["truth"], f"data/records/{victim['clip_id']}.json", "metadata.jsonl"}
    assert _files(root) == _files(tiny)
    # Complete: a further call writes nothing at all.
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    generate(WorldConfig(root=root, workers=1, **TINY), progress=False)
    assert mtimes == {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_killed_generation_resumes_where_it_stopped(tiny, tmp_path, monkeypatch):
    real_write = world_mod.write_video
    calls = []

    def dies_on_third(path, *args):
        calls.append(Path(path).stem)
        if len(calls) == 3:
            # What a kill leaves: a half-written temp file next to the finished ones.
            (Path(path).parent / f".{Path(path).name}.partial").write_bytes(b"\0" * 10)
            raise KeyboardInterrupt
        return real_write(path, *args)

    monkeypatch.setattr(world_mod, "write_video", dies_on_third)
    root = tmp_path / "w"
    with pytest.raises(KeyboardInterrupt):
        generate(WorldConfig(root=root, workers=1, **TINY), progress=False)
    assert not (root / "metadata.jsonl").exists()
    assert len(list((root / "data" / "records").glob("*.json"))) == 2

    calls.clear()
    monkeypatch.setattr(world_mod, "write_video", lambda path, *a: (calls.append(path), real_write(path, *a)))
    generate(WorldConfig(root=root, workers=1, **TINY), progress=False)
    assert len(calls) == 2  # only the two clips that were not finished
    assert _files(root) == _files(tiny)  # and the temp file is gone


def test_another_config_in_the_same_root_is_refused(tiny):
    with pytest.raises(MemoZooError, match="seed"):
        generate(WorldConfig(root=tiny, workers=1, **{**TINY, "seed": 5}), progress=False)


# ------------------------------------------------------------------------------------ dataset


def test_dataset_splits_by_speaker(tiny):
    by_split = {}
    for split in ("train", "test", "all"):
        dataset = TalkingWorld(TalkingWorldConfig(root=tiny, split=split, workers=1, **TINY), progress=False)
        by_split[split] = dataset.clips()
        assert dataset.skipped == []
    train_speakers = {r.speaker for r in by_split["train"]}
    test_speakers = {r.speaker for r in by_split["test"]}
    assert train_speakers == {"tw_id000"} and test_speakers == {"tw_id001"}  # the last identity is held out
    assert {r.clip_id for r in by_split["all"]} == {r.clip_id for r in by_split["train"] + by_split["test"]}
    entries = {e["clip_id"]: e for e in _entries(tiny)}
    for r in by_split["all"]:
        e = entries[r.clip_id]
        assert (r.video, r.truth, r.frame_count, r.fps, r.emotion) == (
            tiny / e["video"], tiny / e["truth"], e["frames"], 25.0, e["emotion"])
        assert r.audio is None and r.audio_source == r.video


def test_plugin_registers_talking_world():
    (spec,) = tw_plugin.dataset_components()
    assert spec.name == "talking_world" and spec.config is TalkingWorldConfig
    dataset = spec.factory(TalkingWorldConfig())
    assert isinstance(dataset, TalkingWorld)  # building does not generate anything yet
    assert dataset.skipped == []


def test_load_truth_rejects_other_files(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, mouth_open=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        load_truth(path)
    world_mod.write_npz(tmp_path / "y.npz", {"a": np.arange(3)})
    assert np.array_equal(np.load(tmp_path / "y.npz")["a"], np.arange(3))


def test_prosody_mismatch_changes_only_the_train_speakers_voices(tiny, tmp_path):
    # Every train clip's voice speaks the face's emotion shifted by one draw per clip: its faces show
    # the matching world's emotions (the script is as long as the slower or faster voice needs, so the
    # clip may be cut elsewhere), and
    # the held-out speaker's clips are those of the matching world, byte for byte.
    shifted = generate(WorldConfig(root=tmp_path / "w", workers=1, prosody_mismatch=1.0, **TINY), progress=False)
    assert world_mod.world_hash(WorldConfig(prosody_mismatch=0.0)) == world_mod.world_hash(WorldConfig())
    assert "prosody_mismatch" not in WorldConfig().model_dump()  # keys of existing worlds and trainings kept
    plain = {e["clip_id"]: e for e in _entries(tiny)}
    for e in _entries(shifted):
        before = plain[e["clip_id"]]
        labels, matching = [s["emotion"] for s in e["emotions"]], [s["emotion"] for s in before["emotions"]]
        # the same planned emotions; a clip cut at its maximum length may keep fewer of them
        assert labels[:len(matching)] == matching[:len(labels)]
        if e["split"] == "test":
            assert "voice_emotions" not in e
            assert (shifted / e["video"]).read_bytes() == (tiny / before["video"]).read_bytes()
            continue
        order = list(PAPER_LABELS)
        shifts = {(order.index(v) - order.index(s["emotion"])) % 8 for v, s in zip(e["voice_emotions"], e["emotions"])}
        assert len(shifts) == 1 and 0 not in shifts
        audio, original = media.read_audio(shifted / e["video"]), media.read_audio(tiny / before["video"])
        assert len(audio) != len(original) or not np.array_equal(audio, original)


def test_a_shifted_voice_is_the_matching_voice_of_the_shifted_emotion():
    from memo_zoo_plugins.datasets.talking_world.speech import synthesize_script

    plan = next(p for p in plan_clips(WorldConfig(prosody_mismatch=1.0, **TINY)) if p.prosody_shift)
    config = WorldConfig(**TINY)
    lines = [("We met at noon.", "happy"), ("It rained all day.", "sad")]
    utt = world_mod._synthesize(lines, plan, config, 0.3, 7)
    voiced = [(t, world_mod.order_shifted(config, e, plan.prosody_shift)) for t, e in lines]
    same = synthesize_script(voiced, voice=plan.voice, pause=0.3, seed=7)
    assert np.array_equal(utt.samples, same.samples)
    assert [label for label, _, _ in utt.emotion_segments] == ["happy", "sad"]
    assert [s[1:] for s in utt.emotion_segments] == [s[1:] for s in same.emotion_segments]
    plain = synthesize_script(lines, voice=plan.voice, pause=0.3, seed=7)
    assert len(plain.samples) != len(utt.samples) or not np.array_equal(plain.samples, utt.samples)
