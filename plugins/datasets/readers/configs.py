"""Options of the built-in dataset readers (spec §11): pydantic only, no PyAV, numpy or torch.

``plugin.py`` registers these without importing the readers, so ``memo-zoo ls``, ``validate`` and
``schema`` import none of the media code (issue 17.8). Each reader module imports its config from
here, so the old import paths (``memo_zoo_plugins.datasets.readers.mead.MeadConfig``, ...) stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .labels import MEAD_EMOTIONS


# Five frames at 25 fps. Separately stored audio and video of one recording rarely end on the
# same sample: AAC pads its last frame (up to 1024 samples, 64 ms at 16 kHz) and may carry encoder
# priming, and the video ends on a whole frame (40 ms at 25 fps). 0.1 s would reject honest clips
# whose audio was padded at both ends; a wrong pairing or a cut track is off by far more.
DEFAULT_MAX_AV_OFFSET = 0.2


class ReaderConfig(BaseModel):
    """Options common to every layout reader; each reader sets its ``root`` default and adds its own."""

    model_config = ConfigDict(extra="forbid")

    # Declared here so that it comes first in every reader's options; readers override the default.
    root: Path = Field(Path("data"), description="dataset folder (relative to the working directory)")
    probe: bool = Field(
        True, description="open each file's header to fill fps / frame_count and to skip unusable files "
                          "(missing streams, corrupt, empty) and audio/video length mismatches; false = list "
                          "paths only, nothing is opened")
    max_av_offset: float | None = Field(
        DEFAULT_MAX_AV_OFFSET, ge=0,
        description="largest |audio duration - video duration| in seconds before a clip is skipped "
                    "(0.2 s = 5 frames at 25 fps: allows AAC end padding); null = no check. Needs probe")
    require_audio: bool = Field(
        True, description="skip a clip that has neither a separate audio file nor an audio track "
                          "(a talking-head clip without speech cannot train the audio module). Needs probe")


EMBEDDING_KINDS: tuple[str, ...] = ("audio_emb", "audio_emotion", "face_emb", "vocals")


DEFAULT_METADATA = Path("metadata.jsonl")


class MemoLayoutConfig(ReaderConfig):
    """MEMO's layout: data/video, data/embedding/<kind>/<stem>.pt, metadata.jsonl (spec §11)."""

    root: Path = Field(Path("data/memo"), description="folder holding data/video, data/embedding and "
                                                      "metadata.jsonl (relative to the working directory)")
    metadata: Path = Field(DEFAULT_METADATA, description="index file, relative to root (then root/data) or "
                                                        "absolute; if the default is absent, data/video/*.mp4 "
                                                        "is scanned and embeddings are matched by stem")
    required_embeddings: list[str] = Field(
        default_factory=lambda: ["audio_emb", "audio_emotion", "face_emb"],
        description=f"embedding kinds a clip must have, else it is skipped; of {', '.join(EMBEDDING_KINDS)}")
    check_audio_frames: bool = Field(
        True, description="skip a clip whose audio_emb frame count differs from the video's frame count "
                          "(spec §11); probes the video even when probe is false")
    frame_tolerance: int = Field(0, ge=0, description="frames the audio_emb count may differ by (spec: 0)")

    @field_validator("required_embeddings")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in EMBEDDING_KINDS]
        if unknown:
            raise ValueError(f"unknown embedding kind(s) {unknown}; kinds: {', '.join(EMBEDDING_KINDS)}")
        return kinds


# kind -> (folder under the root, suffix; "" = a folder named by the stem)
HALLO_FILES: dict[str, tuple[str, str]] = {
    "images": ("images", ""),
    "face_mask": ("face_mask", ".png"),
    "sep_pose_mask": ("sep_pose_mask", ".png"),
    "sep_face_mask": ("sep_face_mask", ".png"),
    "sep_lip_mask": ("sep_lip_mask", ".png"),
    "face_emb": ("face_emb", ".pt"),
    "audio_emb": ("audio_emb", ".pt"),
}


class HalloLayoutConfig(ReaderConfig):
    """Hallo / Hallo2 preprocessed data: videos/, images/, audios/, masks, face_emb/, audio_emb/."""

    root: Path = Field(Path("data/hallo"), description="the folder that holds videos/, images/, audios/, ... "
                                                       "(relative to the working directory)")
    meta: str = Field("", description="Hallo meta JSON list (<name>_stage1.json or _stage2.json), relative to "
                                      "root or absolute; empty: read every videos/*.mp4 and find its files by stem")
    required: list[str] = Field(
        default_factory=list,
        description=f"kinds a clip must have, else it is skipped; of {', '.join(HALLO_FILES)}")

    @field_validator("required")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in HALLO_FILES]
        if unknown:
            raise ValueError(f"unknown kind(s) {unknown}; kinds: {', '.join(HALLO_FILES)}")
        return kinds


class VideoFolderConfig(ReaderConfig):
    """A folder of video files (audio muxed in); recursive and glob-pattern options."""

    root: Path = Field(Path("data/videos"), description="folder of videos (relative to the working directory)")
    pattern: str = Field("*.mp4", min_length=1, description="glob pattern of the clip files, e.g. '*.mov'")
    recursive: bool = Field(False, description="also look in subfolders (clip id = relative path)")


class HdtfConfig(ReaderConfig):
    """HDTF clips: <name>_<idx>.mp4 or <subset>_<name>_<idx>.mp4; speaker = name."""

    root: Path = Field(Path("data/HDTF"), description="folder of HDTF clips (relative to the working directory)")
    recursive: bool = Field(True, description="also look in subfolders (e.g. one per subset)")
    subsets: list[str] = Field(default_factory=lambda: ["RD", "WDA", "WRA"],
                               description="file-name prefixes that name an HDTF subset rather than a speaker")


class VoxCeleb2Config(ReaderConfig):
    """VoxCeleb2: <split>/mp4/idXXXXX/<youtube_id>/NNNNN.mp4 with a parallel aac/ tree."""

    root: Path = Field(Path("data/voxceleb2"), description="folder holding dev/ and/or test/ "
                                                           "(relative to the working directory)")
    split: Literal["dev", "test"] = Field("test", description="which split to read (the paper evaluates on test)")
    audio: Literal["separate", "muxed"] = Field(
        "separate", description="'separate': audio from the parallel aac/ tree (missing file = skipped); "
                                "'muxed': the mp4's own audio track")


class MeadConfig(ReaderConfig):
    """MEAD: <actor>/video/<view>/<emotion>/level_<n>/<NNN>.mp4 + <actor>/audio/... .m4a."""

    root: Path = Field(Path("data/MEAD"), description="folder of the actor folders (M003, W009, ...), "
                                                      "relative to the working directory")
    views: list[str] = Field(default_factory=lambda: ["front"],
                             description="camera views to read (front, down, top, left_30, left_60, right_30, "
                                         "right_60)")
    emotions: list[str] = Field(default_factory=lambda: sorted(MEAD_EMOTIONS),
                                description="MEAD emotion folders to read (default: all eight)")
    levels: list[int] = Field(default_factory=lambda: [1, 2, 3], description="intensity levels to read")
    contempt_as: Literal["others", "disgusted"] = Field(
        "others", description="paper class for MEAD's 'contempt', which the paper's 8 classes lack")
    audio: Literal["separate", "muxed"] = Field(
        "separate", description="'separate': <actor>/audio/.../<NNN>.m4a (missing file = skipped); "
                                "'muxed': the mp4's own audio track")

    @field_validator("emotions")
    @classmethod
    def _known_emotions(cls, emotions: list[str]) -> list[str]:
        unknown = [e for e in emotions if e not in MEAD_EMOTIONS]
        if unknown:
            raise ValueError(f"unknown MEAD emotion(s) {unknown}; MEAD has: {', '.join(sorted(MEAD_EMOTIONS))}")
        return emotions


# Where the download script and common re-packagings put the processed clips, tried in order.
CLIP_DIR_CANDIDATES = ("processed", "downloaded_celebvhq/processed", "clips", "videos", ".")


class CelebVHQConfig(ReaderConfig):
    """CelebV-HQ: celebvhq_info.json + processed <clip_id>.mp4 clips; emotion labels mapped to 8 classes."""

    root: Path = Field(Path("data/CelebV-HQ"), description="folder holding celebvhq_info.json (relative to the "
                                                           "working directory)")
    info_file: Path = Field(Path("celebvhq_info.json"), description="the info JSON, relative to root or absolute")
    clip_dir: str = Field("", description="folder of the processed <clip_id>.mp4 files, relative to root or "
                                          f"absolute; empty: the first of {', '.join(CLIP_DIR_CANDIDATES)} that "
                                          "holds .mp4 files")
    mixed_emotion: Literal["longest", "first", "unlabelled"] = Field(
        "longest", description="label of a clip with several labelled segments: the one covering the most "
                               "time, the first segment's, or none")
    contempt_as: Literal["others", "disgusted"] = Field(
        "others", description="paper class for CelebV-HQ's 'contempt', which the paper's 8 classes lack")
    speaker_from_ytb_id: bool = Field(True, description="use the YouTube id as the speaker (CelebV-HQ has no "
                                                        "identity labels)")
    report_missing: bool = Field(True, description="list clips of the info file without a clip file as skipped "
                                                   "(false: leave them out silently, for partial downloads)")
