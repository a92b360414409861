"""``hallo_layout``: a dataset prepared by Hallo / Hallo2's preprocessing (spec §11, "Hallo").

Our reading of Hallo's ``scripts/data_preprocess.py`` and ``scripts/extract_meta_info_stage{1,2}.py``
(fudan-generative-vision/hallo): for each ``<root>/videos/<stem>.mp4`` (25 fps) it writes

    images/<stem>/%04d.png           every frame              -> embeddings["images"] (a folder)
    audios/<stem>.wav                16 kHz audio             -> ClipRecord.audio
    face_mask/<stem>.png             union face mask          -> embeddings["face_mask"]
    sep_pose_mask/<stem>.png         head-border mask         -> embeddings["sep_pose_mask"]
    sep_face_mask/<stem>.png         face mask                -> embeddings["sep_face_mask"]
    sep_lip_mask/<stem>.png          lip mask                 -> embeddings["sep_lip_mask"]
    face_emb/<stem>.pt               512-d face embedding     -> embeddings["face_emb"]
    audio_emb/<stem>.pt              wav2vec features         -> embeddings["audio_emb"]

and the meta JSON is a *list* of objects with absolute paths:
stage 1 ``{image_path, mask_path, face_emb}``; stage 2 ``{video_path, mask_path, sep_mask_border,
sep_mask_face, sep_mask_lip, face_emb_path, audio_path, vocals_emb_base_all}``.

Tolerance: the meta file is optional (without it ``videos/*.mp4`` is read and the other files
are found by stem); entries of either stage and a few alternative key names are accepted; unknown
keys are ignored; an absolute path that no longer exists (the dataset was moved, as Hallo writes
``Path.resolve()`` paths) is re-rooted at the first known folder name in it (``.../videos/x.mp4``
-> ``<root>/videos/x.mp4``); a clip without ``audios/<stem>.wav`` uses the video's own track.
Nothing but the video is required unless ``required`` says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.datasets.readers.common import LayoutReader, resolve, sorted_files
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.datasets.readers.configs import HALLO_FILES, HalloLayoutConfig

# Meta JSON keys (both stages, plus spellings seen in forks) -> kind.
META_KEYS: dict[str, str] = {
    "video_path": "video", "video": "video",
    "audio_path": "audio", "audio": "audio",
    "image_path": "images", "images": "images",
    "mask_path": "face_mask", "face_mask": "face_mask",
    "sep_mask_border": "sep_pose_mask", "sep_mask_face": "sep_face_mask", "sep_mask_lip": "sep_lip_mask",
    "face_emb_path": "face_emb", "face_emb": "face_emb",
    "vocals_emb_base_all": "audio_emb", "audio_emb_path": "audio_emb", "audio_emb": "audio_emb",
}
_FOLDERS = {"videos", "audios", *(folder for folder, _ in HALLO_FILES.values())}


def relocate(path: Path, root: Path) -> Path:
    """A moved dataset's absolute path re-rooted at ``root`` (see the module docstring)."""
    if path.exists():
        return path
    parts = path.parts
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] in _FOLDERS:
            return root.joinpath(*parts[index:])
    return path


class HalloLayoutDataset(LayoutReader):
    name = "hallo_layout"
    expected = ("videos/<stem>.mp4 with images/<stem>/, audios/<stem>.wav, face_mask/, face_emb/, audio_emb/ "
                "(Hallo's data_preprocess.py output), optionally a meta JSON list")

    def __init__(self, config: HalloLayoutConfig):
        super().__init__(config)
        self.config: HalloLayoutConfig = config

    def _find(self, root: Path) -> Iterator[ClipRecord | SkippedClip]:
        if self.config.meta:
            yield from self._from_meta(root, resolve(self.config.meta, root))
        elif (root / "videos").is_dir():
            for video in sorted_files(root / "videos", "*.mp4"):
                yield self._record(root, video.stem, video, {})
        else:
            raise MemoZooError(f"dataset root {root} does not look like the hallo_layout layout: no videos/ folder "
                               f"and no meta JSON given; expected {self.expected}")

    def _from_meta(self, root: Path, meta: Path) -> Iterator[ClipRecord | SkippedClip]:
        try:
            entries = json.loads(meta.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MemoZooError(f"Hallo meta file {meta} (option meta of dataset root {root}) does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MemoZooError(f"Hallo meta file {meta} cannot be read as JSON: {error}") from None
        if not isinstance(entries, list):
            raise MemoZooError(f"Hallo meta file {meta} must hold a JSON list of clips, got {type(entries).__name__}")
        for number, entry in enumerate(entries):
            where = f"{meta}[{number}]"
            if not isinstance(entry, dict):
                yield self.skip(where, "meta entry is not a JSON object")
                continue
            given: dict[str, Path] = {}
            for key, value in entry.items():
                kind = META_KEYS.get(key)
                if kind is not None and isinstance(value, str) and value and kind not in given:
                    given[kind] = relocate(resolve(value, root, meta.parent), root)
            if "video" in given:
                stem, video = given["video"].stem, given["video"]
            elif "images" in given:
                # A stage-1 entry names only the frames folder; its video sits in videos/ by stem.
                stem = given["images"].name
                video = root / "videos" / f"{stem}.mp4"
            else:
                yield self.skip(where, "meta entry has neither video_path nor image_path")
                continue
            yield self._record(root, stem, video, given)

    def _record(self, root: Path, stem: str, video: Path, given: dict[str, Path]) -> ClipRecord | SkippedClip:
        found: dict[str, Path] = {}
        missing: dict[str, Path] = {}
        for kind, (folder, suffix) in HALLO_FILES.items():
            path = given.get(kind, root / folder / f"{stem}{suffix}")
            if path.exists():
                found[kind] = path
            elif kind in given:
                missing[kind] = path
        absent = [kind for kind in self.config.required if kind not in found]
        if absent:
            where = ", ".join(f"{kind} ({missing[kind]})" if kind in missing else kind for kind in absent)
            return self.skip(video, f"missing required file(s): {where}")
        audio = given.get("audio", root / "audios" / f"{stem}.wav")
        if "audio" in given and not audio.is_file():
            return self.skip(video, f"audio file {audio} named by the meta JSON not found")
        return ClipRecord(clip_id=stem, video=video, audio=audio if audio.is_file() else None, embeddings=found)


def build(config: HalloLayoutConfig) -> HalloLayoutDataset:
    return HalloLayoutDataset(config)
