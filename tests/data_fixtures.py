"""Tiny media files and the dataset trees of spec §11, built in a test's tmp_path.

Clips are 16 frames of 32x32 at 25 fps (0.64 s) with a 16 kHz sine tone (spec D3), so a whole
layout takes a few hundred kilobytes. Each distinct file is encoded once per test session and
its bytes copied after that: encoding is the slow part, and identical bytes keep the trees the
same in every test. Bad files come in every flavour a reader must survive: truncated (index lost),
truncated with the index first ("faststart"), empty, video without audio, audio without video.
"""

from __future__ import annotations

import functools
import json
import struct
import tempfile
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from memo_zoo.data import media

FPS = 25
FRAMES = 16
SIZE = 32
RATE = 16_000
SECONDS = FRAMES / FPS


def index_frames(count: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """Frames whose flat grey level encodes their index (4 * i), so resampling can be checked.

    A flat image survives H.264 within a level or two, so ``round(mean / 4)`` recovers ``i``.
    """
    levels = (np.arange(count) * 4 % 256).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, size, size, 3)).copy()



def tone(seconds: float, rate: int = RATE, channels: int = 1, hz: float = 440.0) -> np.ndarray:
    """A sine at 0.3 amplitude, shaped (channels, samples) float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.repeat(wave[None, :], channels, axis=0)


def _copy(data: bytes, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@functools.lru_cache(maxsize=None)
def _clip_bytes(frames: int, fps: float, audio_seconds: float | None) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "clip.mp4"
        audio = None if audio_seconds is None else tone(audio_seconds)[0]
        media.write_video(target, index_frames(frames), fps, audio)
        return target.read_bytes()


def write_clip(path: Path, frames: int = FRAMES, fps: float = FPS, audio: bool = True,
               audio_seconds: float | None = None) -> Path:
    """An H.264 MP4 with AAC audio muxed in (as long as the video unless ``audio_seconds``)."""
    seconds = (frames / fps if audio_seconds is None else audio_seconds) if audio else None
    return _copy(_clip_bytes(frames, fps, seconds), Path(path))


def write_video_only(path: Path) -> Path:
    return write_clip(path, audio=False)


@functools.lru_cache(maxsize=None)
def _audio_bytes(suffix: str, seconds: float, rate: int, channels: int) -> bytes:
    layout = "mono" if channels == 1 else "stereo"
    samples = tone(seconds, rate, channels)
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"audio{suffix}"
        container_format = {".wav": "wav", ".m4a": "mp4", ".mp4": "mp4"}[suffix]
        with av.open(str(target), mode="w", format=container_format) as container:
            if suffix == ".wav":
                stream = container.add_stream("pcm_s16le", rate=rate)
                stream.layout = layout
                # packed s16: interleaved channels in one plane
                pcm = (samples.T.reshape(1, -1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
                frame.sample_rate, frame.pts = rate, 0
                for packet in stream.encode(frame):
                    container.mux(packet)
            else:
                stream = container.add_stream("aac", rate=rate)
                stream.layout = layout
                for start in range(0, samples.shape[1], 1024):
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]),
                                                       format="fltp", layout=layout)
                    frame.sample_rate, frame.pts = rate, start
                    for packet in stream.encode(frame):
                        container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return target.read_bytes()


def write_audio(path: Path, seconds: float = SECONDS, rate: int = RATE, channels: int = 1) -> Path:
    """An audio-only file: ``.wav`` (PCM), ``.m4a`` or ``.mp4`` (AAC), by the path's suffix."""
    path = Path(path)
    return _copy(_audio_bytes(path.suffix, seconds, rate, channels), path)


def write_corrupt(path: Path) -> Path:
    """A clip cut to 60 % of its bytes: the MP4 index (written last) is lost, as in a broken download."""
    data = _clip_bytes(FRAMES, FPS, SECONDS)
    return _copy(data[: int(len(data) * 0.6)], Path(path))


def write_empty(path: Path) -> Path:
    return _copy(b"", Path(path))


@functools.lru_cache(maxsize=None)
def _faststart_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "fast.mp4"
        with av.open(str(target), mode="w", format="mp4", options={"movflags": "faststart"}) as container:
            stream = container.add_stream("libx264", rate=Fraction(FPS))
            stream.width = stream.height = SIZE
            stream.pix_fmt = "yuv420p"
            # Noise, so that the frames (not the index) make up most of the file and a cut
            # at 70 % falls between whole frames rather than inside the first one.
            noise = np.random.default_rng(0).integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
            for image in noise:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return target.read_bytes()


def write_truncated_faststart(path: Path) -> Path:
    """An MP4 with its index first, cut to 70 %: the header is intact, later frames are gone."""
    data = _faststart_bytes()
    return _copy(data[: int(len(data) * 0.7)], Path(path))


@functools.lru_cache(maxsize=None)
def _truncated_audio_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "tone.m4a"
        samples = tone(1.0)
        with av.open(str(target), mode="w", format="mp4", options={"movflags": "faststart"}) as container:
            stream = container.add_stream("aac", rate=RATE)
            stream.layout = "mono"
            for start in range(0, samples.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]),
                                                   format="fltp", layout="mono")
                frame.sample_rate, frame.pts = RATE, start
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        data = target.read_bytes()
        with av.open(str(target)) as container:
            ends = [p.pos + p.size for p in container.demux(container.streams.audio[0]) if p.size]
        # Cut exactly after the 8th packet: every packet left is whole, so only the count says
        # that the rest is missing.
        return data[: ends[7]]


def write_truncated_audio(path: Path) -> Path:
    """An AAC .m4a (index first) cut right after its 8th of 17 packets."""
    return _copy(_truncated_audio_bytes(), Path(path))


def write_png(path: Path, size: int = 4) -> Path:
    """A grey RGB PNG (Hallo's frames and masks), written by hand to need no image library."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + b"\x80" * (3 * size) for _ in range(size))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return _copy(data, Path(path))


def save_tensor(path: Path, frames: int, width: int = 4) -> Path:
    """A (frames, width) tensor file, standing in for a precomputed embedding."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torch.zeros(frames, width), path)
    return path


# --- spec §11 layouts --------------------------------------------------------------------------

MEMO_KINDS = ("audio_emb", "audio_emotion", "face_emb", "vocals")


def build_memo_tree(root: Path) -> Path:
    """MEMO: alpha (relative paths) and gamma (absolute paths) are good; beta's audio_emb has 12 of
    16 frames; delta's face_emb is missing; broken.mp4 is corrupt; two metadata lines are bad."""
    data = root / "data"
    for stem in ("alpha", "beta", "gamma", "delta"):
        write_clip(data / "video" / f"{stem}.mp4")
    write_corrupt(data / "video" / "broken.mp4")
    for stem in ("alpha", "beta", "gamma", "delta", "broken"):
        for kind in MEMO_KINDS:
            if stem == "delta" and kind == "face_emb":
                continue
            save_tensor(data / "embedding" / kind / f"{stem}.pt", 12 if stem == "beta" and kind == "audio_emb"
                        else FRAMES)

    def line(stem: str, absolute: bool = False) -> dict[str, str]:
        base = data if absolute else Path("data")
        entry = {"video": str(base / "video" / f"{stem}.mp4")}
        entry.update({kind: str(base / "embedding" / kind / f"{stem}.pt") for kind in MEMO_KINDS[:3]})
        return entry

    lines = [json.dumps(line("alpha")), json.dumps(line("beta")), json.dumps(line("gamma", absolute=True)),
             json.dumps(line("delta")), json.dumps(line("broken")), "{not json", json.dumps({"face_emb": "x.pt"}), ""]
    (root / "metadata.jsonl").write_text("\n".join(lines))
    return root


HALLO_MASKS = ("face_mask", "sep_pose_mask", "sep_face_mask", "sep_lip_mask")


def build_hallo_tree(root: Path) -> Path:
    """Hallo: s1 complete; s2 has only face_emb and a 2 s wav for a 0.64 s video; s3.mp4 is empty.
    Meta files: stage 2 with s1's paths absolute under a folder the dataset was moved from, s2's
    relative, plus two bad entries; stage 1 with s1's frames folder only."""
    write_clip(root / "videos" / "s1.mp4")
    write_clip(root / "videos" / "s2.mp4")
    write_empty(root / "videos" / "s3.mp4")
    for index in range(1, 5):
        write_png(root / "images" / "s1" / f"{index:04d}.png")
    write_audio(root / "audios" / "s1.wav")
    write_audio(root / "audios" / "s2.wav", seconds=2.0)
    for mask in HALLO_MASKS:
        write_png(root / mask / "s1.png")
    save_tensor(root / "face_emb" / "s1.pt", 1, 512)
    save_tensor(root / "face_emb" / "s2.pt", 1, 512)
    save_tensor(root / "audio_emb" / "s1.pt", FRAMES)
    old = Path("/moved/away/hallo")
    stage2 = [
        {"video_path": str(old / "videos/s1.mp4"), "mask_path": str(old / "face_mask/s1.png"),
         "sep_mask_border": str(old / "sep_pose_mask/s1.png"), "sep_mask_face": str(old / "sep_face_mask/s1.png"),
         "sep_mask_lip": str(old / "sep_lip_mask/s1.png"), "face_emb_path": str(old / "face_emb/s1.pt"),
         "audio_path": str(old / "audios/s1.wav"), "vocals_emb_base_all": str(old / "audio_emb/s1.pt")},
        {"video_path": "videos/s2.mp4", "face_emb_path": "face_emb/s2.pt", "audio_path": "audios/s2.wav"},
        "not an object",
        {"mask_path": "face_mask/s1.png"},
    ]
    (root / "hallo_stage2.json").write_text(json.dumps(stage2, indent=1))
    stage1 = [{"image_path": str(old / "images/s1"), "mask_path": str(old / "face_mask/s1.png"),
               "face_emb": str(old / "face_emb/s1.pt")}]
    (root / "hallo_stage1.json").write_text(json.dumps(stage1))
    return root


def build_video_folder(root: Path) -> Path:
    """a.mp4, b.mp4 good; sub/c.mp4 good (recursive only); other.mov good (pattern only); empty,
    silent (no audio), voice (audio only), drift (2 s of audio muxed with 0.64 s of video) and
    notes.txt are not clips."""
    write_clip(root / "a.mp4")
    write_clip(root / "drift.mp4", audio_seconds=2.0)
    write_clip(root / "b.mp4")
    write_clip(root / "sub" / "c.mp4")
    write_clip(root / "other.mov")
    write_empty(root / "empty.mp4")
    write_video_only(root / "silent.mp4")
    write_audio(root / "voice.mp4")
    (root / "notes.txt").write_text("not a clip")
    return root


def build_hdtf_tree(root: Path) -> Path:
    for name in ("WDA_BarackObama_000", "JohnDoe_002", "WRA_Kamala_Harris_000_3"):
        write_clip(root / f"{name}.mp4")
    write_clip(root / "RD" / "RD_Radio1_001.mp4")
    write_clip(root / "intro.mp4")
    write_corrupt(root / "WDA_Broken_001.mp4")
    return root


def build_voxceleb2_tree(root: Path) -> Path:
    """test: id00017 two clips (00002 without audio), id00018 with 48 kHz stereo audio, id00019
    with 2 s of audio for 0.64 s of video, a non-id folder; dev: id00001 one clip."""
    def clip(split: str, speaker: str, video_id: str, utterance: str, audio: bool = True, **audio_args) -> None:
        write_clip(root / split / "mp4" / speaker / video_id / f"{utterance}.mp4")
        if audio:
            write_audio(root / split / "aac" / speaker / video_id / f"{utterance}.m4a", **audio_args)

    clip("test", "id00017", "ytA1", "00001")
    clip("test", "id00017", "ytA1", "00002", audio=False)
    clip("test", "id00018", "ytB2", "00001", rate=48_000, channels=2)
    clip("test", "id00019", "ytE5", "00001", seconds=2.0)
    clip("test", "misc", "ytC3", "00001")
    write_audio(root / "test" / "aac" / "id00018" / "ytB2" / "00003.m4a")  # audio without video: ignored
    clip("dev", "id00001", "ytD4", "00001")
    return root


def build_mead_tree(root: Path) -> Path:
    """M003: front angry/1, contempt/2, fear/3 good; left_30 happy/1 good; 'bored' (not MEAD), sad
    without audio and a 'lvl1' folder are bad. W009: front neutral/1 good."""
    def clip(actor: str, view: str, emotion: str, level: str, number: str, audio: bool = True) -> None:
        write_clip(root / actor / "video" / view / emotion / level / f"{number}.mp4")
        if audio:
            write_audio(root / actor / "audio" / emotion / level / f"{number}.m4a")

    clip("M003", "front", "angry", "level_1", "001")
    clip("M003", "front", "contempt", "level_2", "001")
    clip("M003", "front", "fear", "level_3", "002")
    clip("M003", "left_30", "happy", "level_1", "001")
    clip("M003", "front", "bored", "level_1", "001")
    clip("M003", "front", "sad", "level_1", "003", audio=False)
    clip("M003", "front", "sad", "lvl1", "004")
    clip("W009", "front", "neutral", "level_1", "001")
    return root


def build_celebv_hq_tree(root: Path) -> Path:
    """celebvhq_info.json in the README's format, clips in processed/: one file missing, one corrupt,
    one not listed; labels plain, segmented (sep_flag), capitalised, contempt and unknown."""
    def entry(ytb_id: str, emotion: object) -> dict[str, object]:
        return {"ytb_id": ytb_id, "duration": {"start_sec": 1.0, "end_sec": 4.5},
                "bbox": {"top": 0.0, "bottom": 0.9, "left": 0.2, "right": 0.7},
                "attributes": {"appearance": [0, 1, 0], "action": [0, 0, 1], "emotion": emotion},
                "version": "v0.1"}

    clips = {
        "ytAAA_0": entry("ytAAA", {"sep_flag": False, "labels": "happy"}),
        "ytAAA_1": entry("ytAAA", {"sep_flag": True, "labels": [
            {"emotion": "neutral", "start_sec": 0, "end_sec": 0.3},
            {"emotion": "anger", "start_sec": 0.3, "end_sec": 3.0},
            {"emotion": "neutral", "start_sec": 3.0, "end_sec": 3.5}]}),
        "ytBBB_0": entry("ytBBB", {"sep_flag": False, "labels": "contempt"}),
        "ytBBB_1": entry("ytBBB", {"sep_flag": False, "labels": "Sadness"}),
        "ytCCC_0": entry("ytCCC", {"sep_flag": False, "labels": "bored"}),
        "ytCCC_1": entry("ytCCC", {"sep_flag": False, "labels": "fear"}),
        "ytDDD_0": entry("ytDDD", {"sep_flag": False, "labels": "neutral"}),
    }
    info = {"meta_info": {"appearance_mapping": ["Blurry", "Male", "Young"],
                          "action_mapping": ["blow", "chew", "talk"]}, "clips": clips}
    (root).mkdir(parents=True, exist_ok=True)
    (root / "celebvhq_info.json").write_text(json.dumps(info))
    for clip_id in ("ytAAA_0", "ytAAA_1", "ytBBB_0", "ytBBB_1", "ytCCC_0", "extra_9"):
        write_clip(root / "processed" / f"{clip_id}.mp4")
    write_corrupt(root / "processed" / "ytDDD_0.mp4")
    return root
