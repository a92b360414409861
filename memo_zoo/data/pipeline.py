"""The data pipeline of spec §7: stages that keep, transform or drop clips, run resumably.

A *stage* (a ``preprocess`` component, built by ``factory(config)``; its protocol is
``memo_zoo.slots.preprocess.Stage``) has a ``name`` and ``process(clip, out_dir) -> StageResult``. It either keeps the clip (unchanged, or replaced by
one or more new clip files it wrote under ``out_dir``: scene pieces, face crops, ...) or drops it
with a reason and, when there is one, the measured value ("quality 31.2 < 40").

``run_pipeline`` runs the stages in order over a dataset's clips and writes, under ``out_dir``:

- ``report.jsonl``: one line per clip per stage (clip, stage, kept, reason, value, outputs),
  appended and flushed as soon as that stage has finished with that clip (spec §7: "each dropped
  clip is logged with the stage and reason");
- ``data/video/*.mp4`` and ``metadata.jsonl``: the surviving clips in MEMO's layout (spec §11:
  ``video`` plus the speaker / emotion fields);
- ``work/<NN>_<stage>/``: what each stage wrote; ``pipeline.json``: the stages it was run with.

It resumes where it stopped: a (stage, clip) pair whose result is in the report, with its output
files still there, is taken from the report instead of being processed again. Every file is
written atomically (``write_video``, ``_atomic_write``), so a kill leaves no half file behind and a
report line never points at a partial output. A clip whose media cannot be used (``MediaError``)
is dropped with that reason; it never stops the run.

This module runs the stages in one process (the ``local`` engine, the default);
``memo_zoo.data.ray_pipeline`` runs the same stages on a Ray cluster with the same report, manifest
and files. The pieces both engines share (a report line, a result read back from one, a stage step,
the manifest) live here, so that the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from pydantic import BaseModel

from memo_zoo.atomic import write_text_atomically
from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.data.media import AUDIO_RATE, MediaError, probe, read_audio, read_frames, write_video
from memo_zoo.errors import MemoZooError
from memo_zoo.progress import progress as default_progress
from memo_zoo.slots.dataset import ClipDataset
from memo_zoo.slots.preprocess import Stage

REPORT_FILE = "report.jsonl"
MANIFEST_FILE = "metadata.jsonl"
STATE_FILE = "pipeline.json"
WORK_DIR = "work"
VIDEO_DIR = Path("data") / "video"
DATASET_STAGE = "dataset"  # report lines for clips the dataset reader itself left out
MANIFEST_STAGE = "manifest"  # the last step: copying a survivor into data/video


# ---- what a stage returns ----------------------------------------------------------------------


@dataclass(frozen=True)
class StageResult:
    """What a stage did with one clip.

    kept:   True when the clip goes on; ``clips`` then holds what goes on (the clip itself, or the
            new clips the stage wrote), at least one.
    reason: why it was dropped (required then), or a note on a kept clip.
    value:  the measurement the decision was made on (quality score, sync confidence, ...).
    """

    kept: bool
    clips: tuple[ClipRecord, ...] = ()
    reason: str = ""
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kept and not self.clips:
            raise ValueError("a kept clip needs at least one output clip; drop it with a reason instead")
        if not self.kept and (self.clips or not self.reason):
            raise ValueError("a dropped clip has a reason and no output clips")

    @classmethod
    def keep(cls, *clips: ClipRecord, reason: str = "", value: float | None = None) -> "StageResult":
        return cls(True, tuple(clips), reason, None if value is None else float(value))

    @classmethod
    def drop(cls, reason: str, value: float | None = None) -> "StageResult":
        return cls(False, (), reason, None if value is None else float(value))


# ---- helpers for stages ------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def clip_stem(clip_id: str) -> str:
    """A file name stem for a clip id, unique per id.

    Ids hold '/' (``M003/front/angry/level_1/001``); they are flattened, and a short hash of the
    id is appended whenever flattening changed it, so that two ids never share a file.
    """
    stem = _UNSAFE.sub("_", clip_id).strip("._") or "clip"
    if stem != clip_id:
        stem = f"{stem}-{hashlib.sha1(clip_id.encode()).hexdigest()[:8]}"
    return stem


def read_clip_audio(clip: ClipRecord) -> np.ndarray | None:
    """The clip's audio at 16 kHz mono (spec D3), or None when it has none at all."""
    if clip.audio is None and not probe(clip.video).has_audio:
        return None
    return read_audio(clip.audio_source, AUDIO_RATE)


def audio_span(audio: np.ndarray | None, start_frame: int, end_frame: int, fps: float) -> np.ndarray | None:
    """The samples that play with frames ``[start_frame, end_frame)`` (audio and video start together)."""
    if audio is None:
        return None
    start = int(round(start_frame / fps * AUDIO_RATE))
    end = int(round(end_frame / fps * AUDIO_RATE))
    return audio[start:end]


def write_clip(source: ClipRecord, out_dir: Path, frames: np.ndarray, fps: float, audio: np.ndarray | None,
               clip_id: str | None = None) -> ClipRecord:
    """Write frames (+ audio) as ``out_dir/<stem>.mp4`` and return the record of the new clip.

    The new clip keeps the labels (speaker, emotion, view, ...) of ``source``. Precomputed
    ``embeddings`` and the per-frame ``truth`` sidecar are not carried over: they describe the
    source's frames, which a cut, crop or resample no longer matches.
    """
    clip_id = clip_id or source.clip_id
    path = write_video(Path(out_dir) / f"{clip_stem(clip_id)}.mp4", frames, fps, audio)
    return dataclasses.replace(source, clip_id=clip_id, video=path, audio=None, fps=float(fps),
                               frame_count=int(len(frames)), embeddings={}, truth=None)


def load_clip(clip: ClipRecord, fps: float | None = None) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Frames (T, H, W, 3) uint8, their rate, and the audio (or None) of a clip."""
    frames, rate = read_frames(clip.video, fps=fps)
    return frames, rate, read_clip_audio(clip)


# ---- (de)serialising records for the report -----------------------------------------------------


def record_to_json(clip: ClipRecord) -> dict[str, Any]:
    data = dataclasses.asdict(clip)
    for key in ("video", "audio", "truth"):
        if data[key] is not None:
            data[key] = str(data[key])
    data["embeddings"] = {k: str(v) for k, v in clip.embeddings.items()}
    return data


def record_from_json(data: dict[str, Any]) -> ClipRecord:
    data = dict(data)
    for key in ("video", "audio", "truth"):
        if data.get(key) is not None:
            data[key] = Path(data[key])
    data["embeddings"] = {k: Path(v) for k, v in (data.get("embeddings") or {}).items()}
    return ClipRecord(**data)


def _outputs_exist(clips: Iterable[ClipRecord]) -> bool:
    return all(c.video.is_file() and (c.audio is None or c.audio.is_file()) for c in clips)


# ---- files --------------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    write_text_atomically(path, text)


def _atomic_copy(source: Path, target: Path, link: bool) -> None:
    """Copy ``source`` to ``target`` atomically; hard-link instead when ``link`` (and the filesystem allows)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    try:
        linked = False
        if link:
            try:
                os.link(source, temp)
                linked = True
            except OSError:  # another filesystem, or one without hard links
                pass
        if not linked:
            shutil.copyfile(source, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def read_report(path: Path) -> dict[tuple[int, str], dict[str, Any]]:
    """Recorded results by (stage index, clip id); the last line of a pair wins.

    A kill can cut the last line short; that line is cut off the file so that the lines appended
    next start on a line of their own.
    """
    if not path.exists():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        with path.open("r+b") as stream:
            stream.truncate(len(raw))
    done: dict[tuple[int, str], dict[str, Any]] = {}
    for line in raw.decode("utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        done[(int(entry["index"]), entry["clip"])] = entry
    return done


def stage_labels(names: Sequence[str]) -> list[str]:
    """Stage names, numbered where one stage kind appears more than once (``resize_1``, ``resize_2``)."""
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(f"{name}_{seen[name]}" if names.count(name) > 1 else name)
    return labels


def describe_stages(stages: Sequence[Any], labels: Sequence[str]) -> list[dict[str, Any]]:
    """What ``pipeline.json`` records of each stage: its label and its ``config`` (when it has one)."""
    described = []
    for stage, label in zip(stages, labels):
        config = getattr(stage, "config", None)
        described.append({"stage": label, "config": config.model_dump(mode="json")
                          if isinstance(config, BaseModel) else None})
    return described


def prepare_out_dir(out_dir: Path, described: list[dict[str, Any]], resume: bool) -> None:
    """Start fresh, or check that the folder was filled by the same stages before resuming."""
    state = out_dir / STATE_FILE
    if not resume:
        # Only what the pipeline itself creates is removed; anything else in out_dir is left alone.
        for name in (REPORT_FILE, MANIFEST_FILE, STATE_FILE):
            (out_dir / name).unlink(missing_ok=True)
        for folder in (out_dir / WORK_DIR, out_dir / VIDEO_DIR):
            shutil.rmtree(folder, ignore_errors=True)
    elif state.exists():
        previous = json.loads(state.read_text(encoding="utf-8")).get("stages")
        if previous != described:
            raise MemoZooError(
                f"{out_dir} holds a pipeline run with other stages or options ({state}); resuming it would "
                "mix their outputs. Use another out_dir, or resume: false to start it over")
    _atomic_write(state, json.dumps({"stages": described}, indent=2) + "\n")


# ---- running ------------------------------------------------------------------------------------


@dataclass
class StageCounts:
    """Clips a stage saw, kept, dropped, and clips it handed on (more than kept when it splits)."""

    seen: int = 0
    kept: int = 0
    dropped: int = 0
    outputs: int = 0


@dataclass(frozen=True)
class PipelineResult:
    """counts:    per stage label (in order, then ``manifest``).
    clips:     the surviving clips, their videos under ``out_dir/data/video``.
    dropped:   every drop, by the dataset reader or a stage, with the stage and reason.
    processed: (stage, clip) pairs actually run now; the rest came from the report (resume).
    """

    counts: dict[str, StageCounts]
    clips: list[ClipRecord]
    dropped: list[SkippedClip]
    report: Path
    manifest: Path
    processed: int


def report_entry(clip_id: str, source: str, label: str, index: int, result: StageResult) -> dict[str, Any]:
    """The report line (as a dict) of one stage's result on one clip; both engines write exactly this."""
    return {"clip": clip_id, "source": source, "stage": label, "index": index, "kept": result.kept,
            "reason": result.reason or None, "value": result.value,
            "outputs": [record_to_json(c) for c in result.clips]}


def result_from_entry(entry: dict[str, Any] | None, check_files: bool = True) -> StageResult | None:
    """The result a report line recorded, or None when there is none or (``check_files``) its output
    files are gone (the resume rule: such a pair is run again)."""
    if entry is None:
        return None
    outputs = tuple(record_from_json(o) for o in entry["outputs"])
    if check_files and not _outputs_exist(outputs):
        return None  # its files were removed since: run the stage again
    if entry["kept"]:
        return StageResult.keep(*outputs, reason=entry.get("reason") or "", value=entry.get("value"))
    return StageResult.drop(entry.get("reason") or "dropped", entry.get("value"))


def attempt_stage(label: str, work: Callable[[], StageResult]) -> StageResult:
    """Run one stage on one clip: a clip whose media cannot be used is dropped with the reason."""
    try:
        result = work()
    except MediaError as error:  # a bad clip is dropped and reported, never a crash
        result = StageResult.drop(error.reason)
    if not isinstance(result, StageResult):
        raise TypeError(f"stage {label!r} returned {type(result).__name__}, not a StageResult")
    return result


def stage_folder(out_dir: Path, index: int, label: str) -> Path:
    """Where stage ``index`` writes its clips: ``work/<NN>_<label>``."""
    return out_dir / WORK_DIR / f"{index:02d}_{label}"


def publish_step(clip: ClipRecord, out_dir: Path) -> StageResult:
    """The manifest step: the clip published under ``data/video``."""
    return StageResult.keep(_publish(clip, out_dir / VIDEO_DIR, out_dir))


class _Runner:
    def __init__(self, stages: Sequence[Stage], labels: list[str], out_dir: Path,
                 done: dict[tuple[int, str], dict[str, Any]], report: Any):
        self.stages = stages
        self.labels = labels
        self.out_dir = out_dir
        self.done = done
        self.report = report
        self.counts = {label: StageCounts() for label in [*labels, MANIFEST_STAGE]}
        self.dropped: list[SkippedClip] = []
        self.processed = 0

    def _record(self, index: int, label: str, clip_id: str, source: str, result: StageResult) -> None:
        entry = report_entry(clip_id, source, label, index, result)
        append_report_line(self.report, entry)
        self.done[(index, clip_id)] = entry

    def _step(self, index: int, label: str, clip: ClipRecord, source: str,
              work: Callable[[], StageResult]) -> StageResult:
        result = result_from_entry(self.done.get((index, clip.clip_id)))
        if result is None:
            result = attempt_stage(label, work)
            self.processed += 1
            self._record(index, label, clip.clip_id, source, result)
        count_result(self.counts[label], result)
        if not result.kept:
            self.dropped.append(SkippedClip(str(clip.clip_id), label, drop_reason(result)))
        return result

    def run_clip(self, clip: ClipRecord) -> list[tuple[ClipRecord, str]]:
        current = [clip]
        for index, (stage, label) in enumerate(zip(self.stages, self.labels)):
            folder = stage_folder(self.out_dir, index, label)
            following: list[ClipRecord] = []
            for item in current:
                folder.mkdir(parents=True, exist_ok=True)
                result = self._step(index, label, item, clip.clip_id,
                                    lambda s=stage, i=item, f=folder: s.process(i, f))
                following.extend(result.clips)
            current = following
        final = []
        for item in current:
            result = self._step(len(self.stages), MANIFEST_STAGE, item, clip.clip_id,
                                lambda i=item: publish_step(i, self.out_dir))
            final.extend((c, clip.clip_id) for c in result.clips)
        return final


def append_report_line(report: Any, entry: dict[str, Any]) -> None:
    """Append one line to the open report file."""
    report.write(json.dumps(entry) + "\n")
    # Flushed and synced per line: after a kill, the report says exactly what was finished.
    report.flush()
    os.fsync(report.fileno())


def count_result(counts: StageCounts, result: StageResult) -> None:
    counts.seen += 1
    if result.kept:
        counts.kept += 1
        counts.outputs += len(result.clips)
    else:
        counts.dropped += 1


def drop_reason(result: StageResult) -> str:
    """The reason a dropped clip is listed with in ``PipelineResult.dropped``."""
    return result.reason or "dropped"


def _publish(clip: ClipRecord, folder: Path, out_dir: Path) -> ClipRecord:
    """The clip as one MP4 with its audio muxed in, under ``data/video`` (spec §11, MEMO layout)."""
    target = folder / f"{clip_stem(clip.clip_id)}.mp4"
    if clip.audio is None and clip.video.suffix.lower() == ".mp4":
        if not clip.video.is_file():
            raise MediaError(clip.video, "file not found")
        # A stage's own output is hard-linked (no second copy on disk); a dataset's original file is
        # copied, so that editing the published clip can never change the user's source data.
        _atomic_copy(clip.video, target, link=clip.video.resolve().is_relative_to(out_dir.resolve()))
        info = probe(target)
        return dataclasses.replace(clip, video=target, fps=clip.fps or info.fps,
                                   frame_count=clip.frame_count or info.frame_count)
    # A separate audio track (MEAD's .m4a, VoxCeleb2's aac/ tree) or another container: re-encode.
    frames, fps, audio = load_clip(clip)
    return write_clip(clip, folder, frames, fps, audio)


def _manifest_entry(clip: ClipRecord, source: str, out_dir: Path) -> dict[str, Any]:
    return {"video": clip.video.relative_to(out_dir).as_posix(), "clip_id": clip.clip_id, "source": source,
            "speaker": clip.speaker, "emotion": clip.emotion, "source_emotion": clip.source_emotion,
            "intensity": clip.intensity, "view": clip.view, "fps": clip.fps, "frame_count": clip.frame_count}


def load_clips(dataset: ClipDataset, max_clips: int | None) -> tuple[list[ClipRecord], list[SkippedClip]]:
    """The dataset's clips (its first ``max_clips``) and the files its reader left out; raises
    ``MemoZooError`` when there is no clip at all."""
    clips = list(dataset.clips())
    if max_clips is not None:
        clips = clips[:max_clips]
    skipped = list(getattr(dataset, "skipped", []) or [])
    if not clips:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        raise MemoZooError(f"the dataset has no usable clip{(' (' + reasons + ')') if reasons else ''}")
    return clips, skipped


def record_dataset_skips(skipped: Sequence[SkippedClip], done: dict[tuple[int, str], dict[str, Any]],
                         report: Any) -> list[SkippedClip]:
    """Report the files the dataset reader left out (once: a resumed run finds them in ``done``)."""
    for skip in skipped:
        if (-1, skip.path) not in done:
            entry = report_entry(skip.path, skip.path, DATASET_STAGE, -1, StageResult.drop(skip.reason))
            append_report_line(report, entry)
            done[(-1, skip.path)] = entry
    return [SkippedClip(skip.path, DATASET_STAGE, skip.reason) for skip in skipped]


def finish(out_dir: Path, survivors: list[tuple[ClipRecord, str]], counts: dict[str, StageCounts],
           dropped: list[SkippedClip], processed: int) -> PipelineResult:
    """Write ``metadata.jsonl`` (survivors in dataset order) and return the result; raises
    ``MemoZooError`` when no clip survived."""
    report_path = out_dir / REPORT_FILE
    manifest = out_dir / MANIFEST_FILE
    _atomic_write(manifest, "".join(json.dumps(_manifest_entry(c, s, out_dir)) + "\n" for c, s in survivors))
    result = PipelineResult(counts, [c for c, _ in survivors], dropped, report_path, manifest, processed)
    if not survivors:
        summary = ", ".join(f"{label}: {c.dropped} dropped" for label, c in counts.items() if c.dropped)
        raise MemoZooError(f"no clip survived the pipeline ({summary or 'nothing kept'}); "
                           f"see the reasons in {report_path}")
    return result


def run_pipeline(dataset: ClipDataset, stages: Sequence[Stage], out_dir: str | Path, *, resume: bool = True,
                 max_clips: int | None = None,
                 progress: Callable[..., Iterator[ClipRecord]] = default_progress) -> PipelineResult:
    """Run ``stages`` over ``dataset.clips()`` into ``out_dir``; see the module docstring.

    Raises ``MemoZooError`` when the dataset has no clip, when ``out_dir`` was filled by other
    stages (and ``resume``), or when no clip survives (the report is written first).
    """
    # Absolute, so that the paths in the report still hold when a resume starts from another folder.
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = stage_labels([stage.name for stage in stages])
    prepare_out_dir(out_dir, describe_stages(stages, labels), resume)
    report_path = out_dir / REPORT_FILE
    done = read_report(report_path)
    clips, skipped = load_clips(dataset, max_clips)

    survivors: list[tuple[ClipRecord, str]] = []
    with report_path.open("a", encoding="utf-8") as report:
        runner = _Runner(stages, labels, out_dir, done, report)
        runner.dropped.extend(record_dataset_skips(skipped, done, report))
        for clip in progress(clips, desc="preprocess", total=len(clips), unit="clip"):
            survivors.extend(runner.run_clip(clip))
    return finish(out_dir, survivors, runner.counts, runner.dropped, runner.processed)
