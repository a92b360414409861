"""``task: {kind: train_emotion}``: train the recipe's emotion detector head (spec D1, D2, E5).

What it trains: the recipe's ``emotion_detector`` (``prosody_mlp`` or ``emotion2vec_mlp``): its
frozen backbone gives one feature vector per 3 s window, the 5-layer MLP head learns the classes.
The trained head is saved (atomically) to ``task.out``, else to the detector's own ``checkpoint``
(prosody_mlp) / ``head`` (emotion2vec_mlp) path, so the same ``emotion_detector`` block then loads it.
Registered by the emotion detectors' plugin (``memo_zoo_plugins.emotion.plugin``); the experiment
task runs it first through the registry when its ``train_detector:`` is set.

Data (spec D2):

- sources: ``data.dataset`` (any dataset component whose clips carry ``emotion``, e.g. the
  synthetic ``talking_world``; a dataset with its own ``split`` option is read whole, ``all``, and
  split here) and/or ``corpora``: ``{corpus, root}`` folders of the emotion corpora named by their
  files (``plugins/emotion/labels.py``: RAVDESS, CREMA-D, TESS, SAVEE, EmoDB, MEAD, generic folders);
  their labels are merged into the paper's 8 classes there;
- clips longer than ``segment_seconds`` (30 s) are cut into 30 s segments; a remainder under 1 s is
  dropped (too short to carry an emotion);
- a 3:1 train/test split PER DATASET, by speaker where speakers are known (test speakers are
  never heard in training), else by clip; the units are ordered by a hash of (split_seed, name),
  so the split does not depend on listing order;
- training examples: windows of the detector's ``window_seconds`` every ``window_stride`` seconds
  over each training segment, labelled by the per-frame truth where the clip has it (talking_world
  clips may change emotion mid-clip) else by the clip's label; silent windows are left out (the
  detector labels those ``silence_label`` without its head).

Loss: cross-entropy (class-balanced by default) + ``contrastive_weight`` x a supervised contrastive
loss (Khosla et al. 2020) on the L2-normalised head embedding; AdamW with a cosine schedule;
gradients clipped at l2 norm ``grad_clip`` (1.0, spec D2).

Evaluation, on held-out segments, exactly as inference labels them (spec E5): every video frame's
centred window through the trained detector (``frame_labels``), the segment label = the most
frequent frame label. MLflow receives per-dataset and overall segment accuracy and frame accuracy
(``table3_accuracy.json`` / ``.md``, the paper's Table 3 layout: one row per dataset + overall), the
confusion matrices (``confusion.json`` and ``confusion.png``), per-epoch loss curves (``train.loss``,
``train.ce``, ``train.supcon``, ``test.loss``, ``test.window_accuracy``) and the checkpoint itself.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from memo_zoo.data.media import AUDIO_RATE, MediaError, read_audio
from memo_zoo.errors import MemoZooError
from memo_zoo.runner import RunContext
from memo_zoo_plugins.emotion import emotion2vec, prosody
from memo_zoo_plugins.emotion.labels import scan_corpus
from memo_zoo_plugins.emotion.mlp_head import HeadDetector, MLPHead
from memo_zoo.emotion.segments import clip_label, window_levels_db
from memo_zoo.train.step_loop import StepLoop
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.emotion.configs import CORPORA, CorpusSource, TrainEmotionConfig  # noqa: F401

# Detector kinds this task can train, and the (required) config field their checkpoint path lives in.
TRAINABLE = {"prosody_mlp": (prosody, "checkpoint"), "emotion2vec_mlp": (emotion2vec, "head")}
MIN_SEGMENT_SECONDS = 1.0
_ALIASES = {"others": "other", "other": "others"}  # paper <-> emotion2vec spelling of the catch-all class


@dataclass
class Segment:
    """A <= 30 s piece of one clip, with its labels (indices in the detector's label set)."""

    dataset: str
    clip: str
    unit: str  # what the split keeps together: the speaker, else the clip
    audio: np.ndarray
    label: int
    fps: float
    frame_truth: np.ndarray | None = None  # per video frame, when the clip has per-frame truth
    split: str = "train"

    @property
    def frames(self) -> int:
        return max(1, int(round(len(self.audio) / AUDIO_RATE * self.fps)))

    def frame_labels(self) -> np.ndarray:
        truth = self.frame_truth
        if truth is not None and len(truth):
            return truth[: self.frames] if len(truth) >= self.frames else np.pad(truth, (0, self.frames - len(truth)),
                                                                                   mode="edge")
        return np.full(self.frames, self.label, dtype=np.int64)


@dataclass
class Examples:
    """Window features (N, F) of the frozen backbone and their labels (N,)."""

    features: torch.Tensor
    labels: torch.Tensor


def supervised_contrastive(embedding: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """SupCon loss (Khosla et al. 2020, L_out): pull same-class embeddings together, push others apart.

    Anchors without any positive in the batch are left out; 0 when no anchor has one.
    """
    z = F.normalize(embedding, dim=1)
    logits = z @ z.T / temperature
    n = len(labels)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positive.sum(dim=1)
    has = counts > 0
    if not bool(has.any()):
        return embedding.sum() * 0.0
    mean_positive = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)[has] / counts[has]
    return -mean_positive.mean()


def _hash_order(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def split_units(units: list[str], test_fraction: float, seed: int) -> set[str]:
    """The held-out units: the first round(n * fraction) by hash order (>= 1 when there are >= 2 units)."""
    unique = sorted(set(units), key=lambda u: _hash_order(seed, u))
    if len(unique) < 2:
        return set()
    count = min(len(unique) - 1, max(1, int(round(len(unique) * test_fraction))))
    return set(unique[:count])


def cut_segments(audio: np.ndarray, seconds: float) -> list[tuple[int, int]]:
    """[start, end) sample ranges of <= ``seconds`` pieces; a last piece under 1 s is dropped."""
    width = int(round(seconds * AUDIO_RATE))
    pieces = [(s, min(s + width, len(audio))) for s in range(0, len(audio), width)]
    if len(pieces) > 1 and pieces[-1][1] - pieces[-1][0] < MIN_SEGMENT_SECONDS * AUDIO_RATE:
        pieces.pop()
    return pieces


def training_windows(length: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    if length <= width:
        return np.zeros(1, dtype=np.int64), np.full(1, length, dtype=np.int64)
    starts = np.arange(0, length - width + 1, stride, dtype=np.int64)
    if starts[-1] != length - width:
        starts = np.append(starts, length - width)
    return starts, starts + width


class TrainEmotionTask:
    def __init__(self, config: TrainEmotionConfig):
        self.config = config

    # -- setup ------------------------------------------------------------------------------------

    def _detector(self, context: RunContext) -> tuple[HeadDetector, Path]:
        detector_config = getattr(context.recipe, "emotion_detector", None)
        if detector_config is None:
            raise MemoZooError("task train_emotion trains the recipe's emotion_detector; set e.g. "
                               "`emotion_detector: {kind: prosody_mlp, checkpoint: checkpoints/emotion.safetensors}`")
        if detector_config.kind not in TRAINABLE:
            raise MemoZooError(f"task train_emotion cannot train emotion_detector kind {detector_config.kind!r}; "
                               f"trainable kinds: {', '.join(TRAINABLE)}")
        module, field_name = TRAINABLE[detector_config.kind]
        out = Path(self.config.out or getattr(detector_config, field_name))
        return module.untrained(detector_config), out if out.is_absolute() else context.workdir / out

    def _label_index(self, label: str | None, labels: tuple[str, ...]) -> int | None:
        if label is None:
            return None
        name = label if label in labels else _ALIASES.get(label)
        if name not in labels:
            raise MemoZooError(f"emotion {label!r} is not in the detector's label set ({', '.join(labels)})")
        return labels.index(name)

    def _segments(self, context: RunContext, labels: tuple[str, ...]) -> tuple[list[Segment], list[tuple[str, str]]]:
        """Every usable segment of every source, and (file, reason) for what was left out."""
        sources: list[tuple[str, list[dict]]] = []
        skipped: list[tuple[str, str]] = []
        dataset_config = context.recipe.data.dataset if self.config.use_dataset else None
        if dataset_config is not None:
            if "split" in type(dataset_config).model_fields:
                dataset_config = dataset_config.model_copy(update={"split": "all"})
            dataset = context.build("dataset", dataset_config)
            items = []
            for record in dataset.clips():
                if record.emotion is None:
                    skipped.append((str(record.video), "no emotion label"))
                    continue
                items.append({"path": record.audio_source, "clip": record.clip_id, "speaker": record.speaker,
                              "label": record.emotion, "fps": record.fps, "truth": record.truth})
            skipped += [(s.path, s.reason) for s in getattr(dataset, "skipped", [])]
            sources.append((dataset_config.kind, items))
        for source in self.config.corpora:
            root = source.root if source.root.is_absolute() else context.workdir / source.root
            try:
                files, left_out = scan_corpus(source.corpus, root)
            except FileNotFoundError as error:
                raise MemoZooError(str(error)) from None
            skipped += [(str(p), r) for p, r in left_out]
            sources.append((source.name or source.corpus, [
                {"path": f.path, "clip": str(f.path.relative_to(root)), "speaker": f.speaker, "label": f.label,
                 "fps": None, "truth": None} for f in files]))
        if not sources:
            raise MemoZooError("task train_emotion has no data: set data.dataset (with use_dataset) or task.corpora")
        segments: list[Segment] = []
        for name, items in sources:
            if self.config.max_clips is not None:
                items = items[: self.config.max_clips]
            if not items:
                raise MemoZooError(f"dataset {name!r} has no labelled clips")
            for item in context.progress(items, desc=f"reading {name}", unit="clip"):
                try:
                    audio = read_audio(item["path"])
                except MediaError as error:
                    skipped.append((str(item["path"]), error.reason))
                    continue
                segments += self._cut(name, item, audio, labels)
        return segments, skipped

    def _cut(self, dataset: str, item: dict, audio: np.ndarray, labels: tuple[str, ...]) -> list[Segment]:
        fps = float(item["fps"] or self.config.eval_fps)
        truth = None
        if item["truth"] is not None:
            from memo_zoo_plugins.datasets.talking_world.truth import load_truth

            world = load_truth(item["truth"])
            truth = np.array([self._label_index(world.emotion_labels[i], labels) for i in world.emotion],
                             dtype=np.int64)
            fps = world.fps
        label = self._label_index(item["label"], labels)
        unit = f"speaker:{item['speaker']}" if item["speaker"] is not None else f"clip:{item['clip']}"
        out = []
        for k, (start, end) in enumerate(cut_segments(audio, self.config.segment_seconds)):
            frame_truth = None
            if truth is not None:
                # The frames whose midpoints fall inside this piece of audio.
                first = int(math.ceil(start / AUDIO_RATE * fps - 0.5))
                last = int(math.ceil(end / AUDIO_RATE * fps - 0.5))
                frame_truth = truth[first:last]
            has_truth = frame_truth is not None and len(frame_truth) > 0
            seg_label = clip_label(torch.from_numpy(frame_truth)) if has_truth else label
            out.append(Segment(dataset, f"{item['clip']}#{k}", unit, audio[start:end], seg_label, fps, frame_truth))
        return out

    # -- data to features -------------------------------------------------------------------------

    def _examples(self, context: RunContext, detector: HeadDetector, segments: list[Segment]) -> Examples:
        o = detector.options
        width = int(round(o.window_seconds * AUDIO_RATE))
        stride = max(1, int(round(self.config.window_stride * AUDIO_RATE)))
        features, targets = [], []
        for segment in context.progress(segments, desc="window features", unit="segment"):
            starts, ends = training_windows(len(segment.audio), width, stride)
            if o.silence_db is not None and o.silence_label is not None:
                keep = window_levels_db(segment.audio, starts, ends) >= o.silence_db
                starts, ends = starts[keep], ends[keep]
            if not len(starts):
                continue
            frames = segment.frame_labels()
            window_labels = []
            for s, e in zip(starts, ends):
                if segment.frame_truth is None:
                    window_labels.append(segment.label)
                    continue
                a = int(s / AUDIO_RATE * segment.fps)
                b = max(a + 1, int(math.ceil(e / AUDIO_RATE * segment.fps)))
                window_labels.append(clip_label(torch.from_numpy(frames[min(a, len(frames) - 1): b])))
            features.append(detector.backbone.window_features(segment.audio, starts, ends))
            targets.append(torch.tensor(window_labels, dtype=torch.long))
        if not features:
            return Examples(torch.zeros(0, detector.backbone.feature_dim), torch.zeros(0, dtype=torch.long))
        return Examples(torch.cat(features).float(), torch.cat(targets))

    # -- training ---------------------------------------------------------------------------------

    def _class_weights(self, labels: torch.Tensor, classes: int) -> torch.Tensor | None:
        if not self.config.balance_classes:
            return None
        counts = torch.bincount(labels, minlength=classes).float()
        present = counts > 0
        weights = torch.zeros(classes)
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return weights

    def _evaluate_windows(self, head: MLPHead, test: Examples, weights: torch.Tensor | None) -> dict[str, float]:
        head.eval()
        with torch.no_grad():
            logits = head(test.features)
            loss = F.cross_entropy(logits, test.labels, weight=weights)
            accuracy = (logits.argmax(dim=1) == test.labels).float().mean()
        return {"test.loss": float(loss), "test.window_accuracy": float(accuracy)}

    def _train(self, context: RunContext, detector: HeadDetector, train: Examples, test: Examples) -> MLPHead:
        c = self.config
        head = detector.new_head()
        head.fit_normalisation(train.features)
        weights = self._class_weights(train.labels, len(detector.labels))
        optimiser = torch.optim.AdamW(head.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        steps_per_epoch = max(1, math.ceil(len(train.labels) / c.batch_size))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, c.epochs * steps_per_epoch)
                                                         / (c.epochs * steps_per_epoch))))
        generator = torch.Generator().manual_seed(context.recipe.seed)
        # The shared step loop, one step an epoch: the bar, and Ctrl-C / SIGTERM taken after the epoch.
        with StepLoop(c.epochs, "training emotion head", unit="epoch") as loop:
            for epochs_done in loop:
                epoch = epochs_done + 1
                head.train()
                order = torch.randperm(len(train.labels), generator=generator)
                totals = {"train.loss": 0.0, "train.ce": 0.0, "train.supcon": 0.0, "train.grad_norm": 0.0}
                for i in range(steps_per_epoch):
                    index = order[i * c.batch_size: (i + 1) * c.batch_size]
                    if len(index) < 2:
                        continue  # a 1-window batch has no contrastive pair and nothing to normalise against
                    embedding, logits = head.forward_with_embedding(train.features[index])
                    ce = F.cross_entropy(logits, train.labels[index], weight=weights)
                    supcon = supervised_contrastive(embedding, train.labels[index], c.temperature)
                    loss = ce + c.contrastive_weight * supcon
                    optimiser.zero_grad()
                    loss.backward()
                    norm = torch.nn.utils.clip_grad_norm_(head.parameters(), c.grad_clip)  # spec D2
                    optimiser.step()
                    schedule.step()
                    for key, value in (("train.loss", loss), ("train.ce", ce), ("train.supcon", supcon),
                                       ("train.grad_norm", norm)):
                        totals[key] += float(value.detach()) / steps_per_epoch
                metrics = {**totals, "train.lr": schedule.get_last_lr()[0]}
                if len(test.labels) and (epoch % c.eval_every == 0 or epoch == c.epochs):
                    metrics.update(self._evaluate_windows(head, test, weights))
                    head.train()
                context.run.log_metrics(metrics, step=epoch)
                loop.advance()
        return head.eval()

    # -- evaluation (spec E5) ---------------------------------------------------------------------

    def _evaluate_segments(self, context: RunContext, detector: HeadDetector, segments: list[Segment]):
        classes = len(detector.labels)
        per_dataset: dict[str, dict[str, np.ndarray]] = {}
        for segment in context.progress(segments, desc="held-out segments (E5)", unit="segment"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # silent tails and the like: labelled by rule, counted as such
                predicted = detector.frame_labels(torch.from_numpy(segment.audio), AUDIO_RATE, segment.fps,
                                                  segment.frames).numpy()
            truth = segment.frame_labels()
            entry = per_dataset.setdefault(segment.dataset, {
                "segments": np.zeros((classes, classes), dtype=np.int64),
                "frames": np.zeros((classes, classes), dtype=np.int64)})
            entry["segments"][clip_label(torch.from_numpy(truth)), clip_label(torch.from_numpy(predicted))] += 1
            np.add.at(entry["frames"], (truth, predicted), 1)
        return per_dataset

    def _report(self, context: RunContext, detector: HeadDetector, segments: list[Segment],
                per_dataset: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
        labels = detector.labels
        table: dict[str, list] = {"dataset": [], "train_segments": [], "test_segments": [], "held_out_units": [],
                                  "accuracy": [], "frame_accuracy": []}
        metrics: dict[str, float] = {}
        names = sorted({s.dataset for s in segments})
        total = {"segments": np.zeros((len(labels),) * 2, dtype=np.int64),
                 "frames": np.zeros((len(labels),) * 2, dtype=np.int64)}
        for name in names + ["overall"]:
            chosen = [s for s in segments if name in ("overall", s.dataset)]
            if name != "overall":
                entry = per_dataset.get(name, {k: np.zeros_like(v) for k, v in total.items()})
                for key in total:
                    total[key] += entry[key]
            else:
                entry = total
            accuracy = float(np.trace(entry["segments"]) / max(1, entry["segments"].sum()))
            frame_accuracy = float(np.trace(entry["frames"]) / max(1, entry["frames"].sum()))
            table["dataset"].append(name)
            table["train_segments"].append(sum(s.split == "train" for s in chosen))
            table["test_segments"].append(int(entry["segments"].sum()))
            table["held_out_units"].append(len({s.unit for s in chosen if s.split == "test"}))
            table["accuracy"].append(round(100 * accuracy, 2))
            table["frame_accuracy"].append(round(100 * frame_accuracy, 2))
            metrics[f"accuracy.{name}"] = accuracy
            metrics[f"frame_accuracy.{name}"] = frame_accuracy
        metrics["chance_accuracy"] = 1.0 / len(labels)
        context.run.log_metrics(metrics)
        context.run.log_table(table, "table3_accuracy.json")
        lines = ["| dataset | train segments | test segments | held-out units | accuracy (%) | frame accuracy (%) |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {' | '.join(str(table[k][i]) for k in table)} |" for i in range(len(table["dataset"]))]
        context.run.log_text("\n".join(lines) + "\n", "table3_accuracy.md")
        context.run.log_dict({"labels": list(labels), "rows_are": "truth", "columns_are": "predicted",
                              "segments": total["segments"].tolist(), "frames": total["frames"].tolist(),
                              "per_dataset": {name: {key: counts.tolist() for key, counts in entry.items()}
                                              for name, entry in per_dataset.items()}},
                             "confusion.json")
        self._plot_confusion(context, labels, total)
        return metrics

    def _plot_confusion(self, context: RunContext, labels: tuple[str, ...], total: dict[str, np.ndarray]) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")  # no display on training machines
            import matplotlib.pyplot as plt
        except ImportError:
            warnings.warn("matplotlib is not installed: confusion.png is not drawn (confusion.json has the numbers)")
            return
        figure, axes = plt.subplots(1, 2, figsize=(12, 5.4))
        for axis, key in zip(axes, ("segments", "frames")):
            counts = total[key]
            rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
            axis.imshow(rates, vmin=0.0, vmax=1.0, cmap="Blues")
            axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
            axis.set_yticks(range(len(labels)), labels)
            axis.set_xlabel("predicted")
            axis.set_ylabel("true")
            accuracy = np.trace(counts) / max(1, counts.sum())
            axis.set_title(f"held-out {key}: {100 * accuracy:.1f}% (n={counts.sum()})")
            for i in range(len(labels)):
                for j in range(len(labels)):
                    if counts[i, j]:
                        axis.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                                  color="white" if rates[i, j] > 0.5 else "black")
        figure.tight_layout()
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "confusion.png"
            figure.savefig(target, dpi=110)
            context.run.log_artifact(target)
        plt.close(figure)

    # -- the task ---------------------------------------------------------------------------------

    def run(self, context: RunContext) -> None:
        started = time.perf_counter()
        detector, out = self._detector(context)
        labels = detector.labels
        segments, skipped = self._segments(context, labels)
        for name in sorted({s.dataset for s in segments}):
            mine = [s for s in segments if s.dataset == name]
            held_out = split_units([s.unit for s in mine], self.config.test_fraction, self.config.split_seed)
            if not held_out:
                raise MemoZooError(f"dataset {name!r} has a single speaker / clip: nothing to hold out for testing")
            for s in mine:
                s.split = "test" if s.unit in held_out else "train"
        train_segments = [s for s in segments if s.split == "train"]
        test_segments = [s for s in segments if s.split == "test"]
        if skipped:
            context.run.log_table({"file": [p for p, _ in skipped], "reason": [r for _, r in skipped]},
                                  "skipped_files.json")
        train = self._examples(context, detector, train_segments)
        test = self._examples(context, detector, test_segments)
        if len(train.labels) < 2:
            raise MemoZooError(f"only {len(train.labels)} non-silent training windows: nothing to train on")
        counts = torch.bincount(train.labels, minlength=len(labels)).tolist()
        context.run.log_metrics({"data.train_segments": len(train_segments), "data.test_segments": len(test_segments),
                                 "data.train_windows": len(train.labels), "data.test_windows": len(test.labels),
                                 "data.skipped_files": len(skipped)})
        context.run.log_dict({"train_windows_per_class": dict(zip(labels, counts)),
                              "test_units": sorted({s.unit for s in test_segments}),
                              "train_units": sorted({s.unit for s in train_segments})}, "split.json")
        head = self._train(context, detector, train, test)
        trained = detector.with_head(head)
        metrics = self._report(context, trained, segments, self._evaluate_segments(context, trained, test_segments))
        seconds = time.perf_counter() - started
        saved = trained.save(out, extra={"run_id": context.run.id, "accuracy_overall": metrics["accuracy.overall"],
                                         "frame_accuracy_overall": metrics["frame_accuracy.overall"],
                                         "datasets": sorted({s.dataset for s in segments}),
                                         "test_units": sorted({s.unit for s in test_segments})})
        context.run.log_artifact(saved, "checkpoint")
        context.run.log_artifact(saved.with_suffix(".json"), "checkpoint")
        context.run.log_metrics({"wall_seconds": seconds})
        context.run.set_tags({"memo_zoo.checkpoint": str(saved)})


def build(config: TrainEmotionConfig) -> TrainEmotionTask:
    return TrainEmotionTask(config)
