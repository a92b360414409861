"""The guide of expression guidance (E6), trained from the recipe's own data before generation.

``ensure_classifier`` is what the experiment task calls when ``generation.expression_guidance`` is
set: when the classifier file is missing and ``task.train_expression_classifier`` is given, it
reads the training clips of ``data.dataset`` (or of the same dataset with the options'
``dataset`` replacing some of its options, or of several such datasets: ``classifier_latents``)
through the training's own frame cache (``TalkingHeadSamples`` on ``task.train.samples``), takes
every frame's latent from the frozen ``model.vae`` (``ClipLatentStore``: the latents a training
already encoded are read, not encoded again), labels each frame with its clip's emotion and trains
``memo_zoo.train.latent_expression.fit_classifier``. Clips without an emotion label are left out.
With the options' ``min_intensity`` each frame is labelled with its own true emotion instead (the
dataset's per-frame truth, ``memo_zoo.data.truth``) and only the frames whose true intensity reaches
it are kept: at an emotion change a clip fades through a neutral face, and its label no longer
says what the frame shows.

The file is written atomically; beside it ``<name>.json`` keeps the held-out figures, and the MLflow
run receives them as ``expression_classifier/accuracy`` and ``.../balanced_accuracy`` with the
confusion matrix (``expression_classifier.json``). An existing file is used when it was trained on
the latents of this recipe's autoencoder (the VAE fingerprint in its metadata), and refused,
naming both fingerprints, otherwise; its labels and latent channels are checked when generation
loads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import ValidationError

from memo_zoo.atomic import write_text_atomically
from memo_zoo.emotion import LABEL_SETS
from memo_zoo.errors import MemoZooError
from memo_zoo.progress import progress
from memo_zoo.runner import RunContext
from memo_zoo.train.config import TrainConfig
from memo_zoo.train.part_configs import ExpressionClassifierTraining

PREFIX = "expression_classifier/"


def ensure_classifier(context: RunContext, target: Path, options: ExpressionClassifierTraining | None,
                      train: TrainConfig, held_out: frozenset[str] = frozenset(), field: str = "classifier") -> Path:
    """``target`` when it exists and reads this recipe's VAE; else train it (module docstring), or say
    how when ``options`` is None. ``held_out``: the speakers the experiment evaluates on, which the
    classifier must not learn (a dataset of another ``seed`` names other people alike, so it is not
    checked). ``field``: the option of ``expression_guidance`` that names ``target``, for the errors."""
    from memo_zoo.model.latent_expression import read_info
    from memo_zoo.train.latent_cache import vae_fingerprint
    from memo_zoo.train.latent_expression import fit_classifier

    if context.recipe.model.vae is None:
        raise MemoZooError("expression guidance needs model.vae (the classifier reads its latents)")
    vae = context.build("vae", context.recipe.model.vae)
    if target.is_file():
        made_for, this = read_info(target).vae_fingerprint, vae_fingerprint(vae)
        if made_for != this:  # another autoencoder's latents: its gradients would point anywhere
            raise MemoZooError(f"task.generation.expression_guidance.{field} {target} was trained on the latents "
                               f"of another autoencoder (fingerprint {made_for}, model.vae's is {this}); delete it "
                               "to train it again or point the classifier elsewhere")
        return target
    if options is None:
        how = ("set task.train_expression_classifier: {} to train it first from data.dataset"
               if field == "classifier" else "train it first with a run whose expression_guidance.classifier it is")
        raise MemoZooError(f"task.generation.expression_guidance.{field} {target} does not exist; {how}, or give "
                           "the path of a trained one")
    if context.recipe.data.dataset is None:
        raise MemoZooError("training the expression classifier needs data.dataset")
    data = classifier_latents(context, vae, train, options, held_out).select(options.min_intensity)
    names = LABEL_SETS[train.samples.label_set]
    model, report = fit_classifier(data.latents, data.labels, data.speakers, names, vae_fingerprint(vae), options,
                                   data.clips)
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target)
    summary = {"labels": list(report.labels), "train_frames": report.train_frames,
               "validation_frames": report.validation_frames, "validation_speakers": report.validation_speakers,
               "accuracy": report.accuracy, "balanced_accuracy": report.balanced_accuracy,
               "confusion": report.confusion, "losses": report.losses, "options": options.model_dump()}
    write_text_atomically(target.with_suffix(".json"), json.dumps(summary, indent=2))
    context.run.log_metrics({PREFIX + name: value for name, value in report.metrics().items()})
    context.run.log_dict(summary, "expression_classifier.json")
    return target


class LabelledLatents(NamedTuple):
    """Per frame: its latent (N, C, h, w), its clip's emotion index, speaker and clip id; read with
    ``frame_truth``, also its own true emotion index and expression intensity (else None)."""

    latents: torch.Tensor
    labels: torch.Tensor
    speakers: list[str]
    clips: list[str]
    frame_labels: torch.Tensor | None = None
    intensity: torch.Tensor | None = None

    def select(self, min_intensity: float | None) -> LabelledLatents:
        """The frames a classifier trained with ``min_intensity`` learns from: every frame with its clip's
        label (None), or the frames whose true intensity is at least ``min_intensity``, each with its
        own true label (a fading or changing expression says little, and the measurer does not score
        it either)."""
        if min_intensity is None:
            return self
        if self.frame_labels is None or self.intensity is None:
            raise MemoZooError("train_expression_classifier.min_intensity needs each frame's true emotion and "
                               "intensity: read the latents with frame_truth")
        keep = torch.nonzero((self.intensity >= min_intensity) & (self.frame_labels >= 0)).flatten()
        if keep.numel() == 0:
            raise MemoZooError(f"train_expression_classifier.min_intensity {min_intensity:g}: no frame's true "
                               "intensity reaches it")
        picked = keep.tolist()
        return LabelledLatents(self.latents[keep], self.frame_labels[keep], [self.speakers[i] for i in picked],
                               [self.clips[i] for i in picked], self.frame_labels[keep], self.intensity[keep])


def classifier_latents(context: RunContext, vae: Any, train: TrainConfig, options: ExpressionClassifierTraining,
                       held_out: frozenset[str] = frozenset(), frame_truth: bool | None = None) -> LabelledLatents:
    """The frames ``options`` trains on, before ``min_intensity`` selects among them: those of
    ``data.dataset`` with ``options.dataset``'s options, or, when that is a list, of each such
    dataset in turn, their speakers and clips prefixed ``d<i>/`` (worlds of two seeds both name
    their people ``tw_id000``..., who are different people). A dataset of another ``seed`` draws
    other people than the ones ``held_out`` names, so it is not checked against them. ``frame_truth``
    (default: whether ``options.min_intensity`` is set) reads each frame's truth too."""
    if frame_truth is None:
        frame_truth = options.min_intensity is not None
    entries = options.dataset if isinstance(options.dataset, list) else [options.dataset or {}]
    parts = []
    for overrides in entries:
        parts.append(labelled_latents(context, vae, train, options.frame_stride, overrides,
                                      frozenset() if "seed" in overrides else held_out,
                                      frame_truth=frame_truth))
    if len(parts) == 1:
        return parts[0]
    return LabelledLatents(torch.cat([part.latents for part in parts]), torch.cat([part.labels for part in parts]),
                           [f"d{i}/{name}" for i, part in enumerate(parts) for name in part.speakers],
                           [f"d{i}/{name}" for i, part in enumerate(parts) for name in part.clips],
                           torch.cat([part.frame_labels for part in parts]) if frame_truth else None,
                           torch.cat([part.intensity for part in parts]) if frame_truth else None)


def labelled_latents(context: RunContext, vae: Any, train: TrainConfig, stride: int,
                     overrides: dict[str, Any] | None = None,
                     held_out: frozenset[str] = frozenset(), frame_truth: bool = False) -> LabelledLatents:
    """Every ``stride``-th frame's latent of the labelled clips of ``data.dataset`` (with ``overrides``
    of its options), its clip's emotion index, the clip's speaker (the clip id when the dataset
    names none) and the clip's id; with ``frame_truth`` also each frame's true emotion index (-1
    where the truth names none) and intensity, read by the dataset (``memo_zoo.data.truth``). A
    clip of a ``held_out`` speaker is refused before anything is encoded."""
    from memo_zoo.data.samples import TalkingHeadSamples
    from memo_zoo.data.truth import TruthReader
    from memo_zoo.train.latent_cache import ClipLatentStore, vae_fingerprint
    from memo_zoo.train.step import encode_frames

    recipe = context.recipe
    dataset = recipe.data.dataset
    if overrides:  # the same kind of dataset with other options (validated as the recipe's would be)
        try:
            dataset = type(dataset).model_validate({**dataset.model_dump(), **overrides})
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors())
            raise MemoZooError(f"task.train_expression_classifier.dataset ({dataset.kind}): {problems}") from None
    component = context.build("dataset", dataset)
    if frame_truth and not isinstance(component, TruthReader):
        raise MemoZooError(f"task.train_expression_classifier.min_intensity needs per-frame truth, which data.dataset "
                           f"({dataset.kind}) does not give; leave min_intensity unset to label frames by clip")
    samples = TalkingHeadSamples(component.clips(), train.samples)
    # A guide trained on the held-out people would be scored on faces it has learned: its figures
    # would no longer say what it does for a new portrait.
    leaked = sorted({record.speaker for record in samples.clips if record.speaker in held_out})
    if leaked:
        raise MemoZooError(f"task.train_expression_classifier.dataset ({dataset.kind}) has clips of "
                           f"{', '.join(leaked[:4])}{' ...' if len(leaked) > 4 else ''}, speakers the experiment "
                           "holds out for evaluation; train the classifier on the training people only "
                           "(talking_world: identities at most the number of training identities, test_identities: 0)")
    store = ClipLatentStore(samples, vae_fingerprint(vae), lambda images: encode_frames(vae, images, train.vae_batch))
    none = len(samples.labels)
    latents, labels, speakers, clip_ids, frame_labels, intensity = [], [], [], [], [], []
    for clip in progress(range(len(samples.clips)), desc="expression classifier: latents", unit="clip"):
        emotion = samples.clip_emotion(clip)
        if emotion == none:
            continue
        frames = store.latents(clip)[::stride]
        latents.append(frames)
        labels.append(torch.full((frames.shape[0],), emotion, dtype=torch.long))
        record = samples.clips[clip]
        speakers += [record.speaker or record.clip_id] * frames.shape[0]
        clip_ids += [record.clip_id] * frames.shape[0]
        if frame_truth:
            truth_labels, truth_intensity = _frame_truth(component, record, samples, stride, frames.shape[0])
            frame_labels.append(truth_labels)
            intensity.append(truth_intensity)
    if not latents:
        raise MemoZooError(f"data.dataset ({recipe.data.dataset.kind}) has no training clip with an emotion label: "
                           "the expression classifier has nothing to learn from")
    if not frame_truth:
        return LabelledLatents(torch.cat(latents), torch.cat(labels), speakers, clip_ids)
    return LabelledLatents(torch.cat(latents), torch.cat(labels), speakers, clip_ids, torch.cat(frame_labels),
                           torch.cat(intensity))


def _frame_truth(component: Any, record: Any, samples: Any, stride: int,
                 count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The true emotion index (-1: none) and intensity of the clip's frames 0, stride, 2 x stride, ...
    (``count`` of them) of the frame cache, each read at the middle of its display interval in the
    truth's own frame rate (the cache may be resampled)."""
    truth = component.frame_truth(record)
    if truth is None or "intensity" not in truth.frames:
        raise MemoZooError(f"train_expression_classifier.min_intensity: clip {record.clip_id} has no per-frame "
                           "truth with an intensity")
    levels = np.asarray(truth.frames["intensity"], np.float32)
    at = np.floor((np.arange(count) * stride + 0.5) * truth.fps / samples.config.fps).astype(np.int64)
    at = np.minimum(at, min(len(truth.emotion), len(levels)) - 1)
    none = len(samples.labels)
    try:
        indices = [samples.emotion_index(truth.emotion[i]) for i in at]
    except ValueError as error:
        raise MemoZooError(f"train_expression_classifier.min_intensity: clip {record.clip_id}'s per-frame truth: "
                           f"{error}") from None
    return (torch.tensor([-1 if i == none else i for i in indices], dtype=torch.long), torch.from_numpy(levels[at]))


def held_out_speakers(context: RunContext, dataset: Any, split: str) -> frozenset[str]:
    """The named speakers of ``dataset``'s ``split`` when that split holds people out ("test"), else
    none: evaluating on the training people, a guide that knows them changes nothing."""
    if split != "test" or dataset is None or "split" not in type(dataset).model_fields:
        return frozenset()
    listed = context.build("dataset", dataset.model_copy(update={"split": split})).clips()
    return frozenset(record.speaker for record in listed if record.speaker)
