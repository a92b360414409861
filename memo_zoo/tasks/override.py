"""The manual-override study of an experiment (``task.override``; spec E4, issue 23 item 3).

MEMO says a label given by hand overrides the emotion the detector hears in the audio. This
measures it on held-out people: each of ``override.clips`` held-out clips is generated from its first
frame and the first ``override.seconds`` of its audio once under every requested label, and the
first clip once more under ``override.schedule`` (for example neutral -> happy -> sad). The
recipe's ``world_expression`` metric reads every frame (its truth replaced by the requested label),
and the study writes and logs to the experiment's MLflow run:

- ``override/expression_acc``: the mean over the requested labels of the share of frames read as
  requested (chance 1/8), and ``override/expression_acc_<label>`` for each label;
- ``override/read_as_audio``: among expressive frames where another label than the audio's own was
  requested, the share read as the audio's emotion (how often the voice wins over the request);
- ``override/schedule_acc``: the share of the schedule video's frames read as scheduled;
- the other listed metrics' figures over all override videos (``override/lip_sync_r``, ...), to
  see whether a request costs lip sync or identity;
- artifacts ``override/confusion.png`` (row = requested, column = measured), ``override/schedule.png``,
  ``override/confusion.json`` and the per-video table ``override/per_video.json``.

Resumable: a video counts as done when its record exists (as the experiment's own videos); the
folder is named by what produced it (``experiment.override_key``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from memo_zoo.atomic import write_text_atomically
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError
from memo_zoo.tasks.held_out import HeldOutClip, select_clips, truth_arrays, write_portrait
from memo_zoo.tasks.override_figures import (confusion, override_accuracy, plot_confusion, plot_schedule,
                                             read_as_audio, segment_accuracy)

EXPRESSION_SERIES = "expression_measured"
PREFIX = "override/"


class OverrideStudy:
    """One experiment run's override study (module docstring); ``task`` is the ExperimentTask."""

    def __init__(self, task: Any, context: Any, train_dir: Path, out_dir: Path):
        self.task, self.context, self.train_dir, self.out_dir = task, context, train_dir, out_dir
        self.options = task.config.override
        self.labels = list(self.options.labels or PAPER_LABELS)  # checked against them by OverrideOptions
        self._model = None

    def run(self) -> dict[str, float]:
        clips = self._clips()
        videos = self._generate(clips)
        return self._measure(clips, videos)

    # ---- clips and videos -------------------------------------------------------------------------

    def _clips(self) -> list[HeldOutClip]:
        held_out = self.task.config.held_out.model_copy(update={"videos": self.options.clips, "min_seconds": 0.0,
                                                                "max_seconds": None})
        clips = select_clips(self.context.recipe.data.dataset, self.context.registry, held_out)
        end = self.options.schedule[-1].end_s if self.options.schedule else 0.0
        if self.options.schedule and clips[0].seconds + 1e-6 < end:
            raise MemoZooError(f"task.override.schedule ends at {end} s but the longest held-out clip "
                               f"({clips[0].record.clip_id}) lasts {clips[0].seconds:.2f} s")
        for clip in clips:
            if clip.truth() is None:
                raise MemoZooError(f"task.override measures with per-frame truth; clip {clip.record.clip_id} of "
                                   f"{self.context.recipe.data.dataset.kind} has none")
        return clips

    def _generate(self, clips: list[HeldOutClip]) -> list[dict[str, Any]]:
        """Every (clip, label) video and the schedule video; each entry: id, clip, requested, paths."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        jobs = [(clip, label, self.options.seconds) for clip in clips for label in self.labels]
        if self.options.schedule:
            jobs.append((clips[0], None, self.options.schedule[-1].end_s))
        portraits = {clip.id: (self.out_dir / f"{clip.id}_portrait.png") for clip in clips}
        images = {clip.id: write_portrait(clip, portraits[clip.id]) for clip in clips}
        videos = []
        for clip, label, seconds in jobs:
            name = f"{clip.id}__{label or 'schedule'}"
            out, record = self.out_dir / f"{name}.mp4", self.out_dir / f"{name}.json"
            portrait_path, portrait = portraits[clip.id], images[clip.id]
            emotion = label if label is not None else list(self.options.schedule)
            if not (record.is_file() and out.is_file()):
                self._generate_one(clip, portrait_path, out, record, emotion, seconds)
            info = json.loads(record.read_text(encoding="utf-8"))
            videos.append({"id": name, "clip": clip, "label": label, "video": out, "portrait": portrait,
                           "frames": int(info["frames"]), "fps": float(info["fps"])})
        return videos

    def _generate_one(self, clip: HeldOutClip, portrait: Path, out: Path, record: Path, emotion: Any,
                      seconds: float) -> None:
        if self._model is None:
            from memo_zoo.generate.loading import load_generator_model

            self._model = load_generator_model(self.train_dir, self.context.recipe, self.context.registry)
        self.task.generate_one(self._model, self.train_dir, clip, portrait, out, record, emotion, seconds)

    def _requested(self, video: dict[str, Any]) -> np.ndarray:
        """The requested label index of every generated frame."""
        frames, fps = video["frames"], video["fps"]
        if video["label"] is not None:
            return np.full(frames, PAPER_LABELS.index(video["label"]), np.int64)
        times = (np.arange(frames) + 0.5) / fps
        requested = np.full(frames, -1, np.int64)
        for segment in self.options.schedule:
            requested[(times >= segment.start_s) & (times < segment.end_s)] = PAPER_LABELS.index(segment.label)
        return requested

    # ---- measuring ------------------------------------------------------------------------------

    def _metrics(self) -> dict[str, Any]:
        """The recipe's metrics of the listed kinds (the first of each kind), with their options."""
        self.task._check_override(self.context)  # the runner's preflight said it already; a direct call too
        found: dict[str, Any] = {}
        for config in self.context.recipe.metrics:
            if config.kind in self.options.metrics and config.kind not in found:
                found[config.kind] = self.context.build("metric", config)
        return found

    def _measure(self, clips: list[HeldOutClip], videos: list[dict[str, Any]]) -> dict[str, float]:
        from memo_zoo.eval.pairs import FilePair
        from memo_zoo.eval.runner import evaluate

        metrics = self._metrics()
        expression = self.options.metrics[0]
        truths = {clip.id: truth_arrays(clip) for clip in clips}
        pairs = []
        for video in videos:
            truth = dict(truths[video["clip"].id])
            requested = self._requested(video)
            # The metric scores the requested label: every frame counts (a request has no fade-in).
            truth.update(emotion=requested, intensity=np.ones(len(requested), np.float32))
            pairs.append(FilePair(video["id"], video["video"], video["clip"].record.video, video["portrait"], truth))
        evaluation = evaluate(metrics, pairs, total=len(pairs))
        result = evaluation.results.get(expression)
        if result is None:
            raise MemoZooError(f"task.override: metric {expression} could not run: "
                               f"{evaluation.skipped.get(expression, 'no result')}")
        series = {video["id"]: np.asarray(result.series[video["id"]][EXPRESSION_SERIES], np.int64)
                  for video in videos}
        return self._report(videos, truths, series, evaluation)

    def _report(self, videos: list[dict[str, Any]], truths: dict[str, Any], series: dict[str, np.ndarray],
                evaluation: Any) -> dict[str, float]:
        run, labels = self.context.run, list(PAPER_LABELS)
        fixed = [v for v in videos if v["label"] is not None]
        counts = confusion([self._requested(v) for v in fixed], [series[v["id"]] for v in fixed], len(labels))
        accuracy, per_label = override_accuracy(counts)
        audio_wins, table = [], []
        per_video = evaluation.per_video()
        for video in videos:
            requested, measured = self._requested(video), series[video["id"]]
            truth = truths[video["clip"].id]
            audio, expressive = np.asarray(truth["emotion"], np.int64), np.asarray(truth["intensity"]) >= 0.5
            wins = read_as_audio(requested, measured, audio, expressive)
            if video["label"] is not None and not np.isnan(wins):
                audio_wins.append(wins)
            n = min(len(requested), len(measured))
            table.append({"video": video["id"], "clip": video["clip"].record.clip_id,
                          "requested": video["label"] or "schedule", "frames": n,
                          "read_as_requested": float(np.mean(measured[:n] == requested[:n])) if n else float("nan"),
                          "read_as_audio": wins, **per_video.get(video["id"], {})})
        columns = list(dict.fromkeys(key for row in table for key in row))
        rows = {key: [row.get(key, float("nan")) for row in table] for key in columns}
        figures = {f"{PREFIX}expression_acc": accuracy,
                   f"{PREFIX}read_as_audio": float(np.mean(audio_wins)) if audio_wins else float("nan")}
        figures.update({f"{PREFIX}expression_acc_{labels[i]}": float(per_label[i])
                        for i in range(len(labels)) if not np.isnan(per_label[i])})
        schedule = [v for v in videos if v["label"] is None]
        if schedule:
            video = schedule[0]
            requested, measured = self._requested(video), series[video["id"]]
            n = min(len(requested), len(measured))
            figures[f"{PREFIX}schedule_acc"] = float(np.mean(measured[:n] == requested[:n]))
            path = plot_schedule(requested, measured, video["fps"], labels, self.out_dir / "schedule.png",
                                 f"{video['clip'].record.clip_id}: requested schedule vs measured expression")
            run.log_artifact(path, "override")
            run.log_dict({"segments": [{"label": labels[label], "start_frame": start, "end_frame": end,
                                        "read_as_requested": share}
                                       for label, start, end, share in segment_accuracy(requested, measured)],
                          "requested": requested[:n].tolist(), "measured": measured[:n].tolist(),
                          "fps": video["fps"]}, "override/schedule.json")
        for key, value in evaluation.summary().items():
            # world_expression's own figures score the request, which the figures above already say;
            # counts and window lengths say how a figure was taken, not how good it is.
            if not key.startswith("world_expression") and not key.endswith(("frames", "_window")):
                figures[f"{PREFIX}{key}"] = value
        path = plot_confusion(counts, labels, self.out_dir / "confusion.png",
                              f"requested vs measured expression ({len(fixed)} videos, "
                              f"{100 * accuracy:.1f} % as requested)")
        run.log_artifact(path, "override")
        run.log_dict({"labels": labels, "counts": counts.tolist(), "expression_acc": accuracy,
                      "expression_acc_per_label": {labels[i]: float(per_label[i]) for i in range(len(labels))
                                                   if not np.isnan(per_label[i])}}, "override/confusion.json")
        run.log_dict(rows, "override/per_video.json")
        run.log_metrics({k: v for k, v in figures.items() if not np.isnan(v)})
        if self.task.config.log_videos:
            for video in videos:
                run.log_artifact(video["video"], "override/videos")
        # beside the videos too, for benchmarks/emotion_override_sheet.py and a reader without MLflow
        write_text_atomically(self.out_dir / "per_video.json", json.dumps(rows, indent=1))
        write_text_atomically(self.out_dir / "figures.json", json.dumps(figures, indent=1))
        return figures
