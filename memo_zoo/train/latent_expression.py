"""Training the latent expression classifier (``memo_zoo.model.latent_expression``) on labelled latents.

``fit_classifier`` takes every frame's latent with its clip's emotion index and the clip's speaker,
and holds out whole speakers (``validation_fraction`` of them, chosen by the seed) so that the
reported accuracy is on faces the classifier never saw, as it is used at generation (the
portrait is a new face). Each training latent gets Gaussian noise of a standard deviation drawn
uniformly in [0, ``noise``] per example: the predictions of the noisier denoising steps, which
guidance reads too, are such latents' smooth versions, and a classifier that only ever saw clean
latents has gradients there no decoder follows. The cross-entropy is class-balanced (weights
1 / class frequency, normalised), so that a frequent label does not become what the gradient
pushes every face towards.

With ``options.reference`` the classifier is reference-conditioned: each frame is read beside a
clean frame of the same speaker from another of their clips (``draw_references``, drawn again every
epoch, so the classifier cannot learn one pairing), as generation reads it beside the portrait,
which shows the same person in some other expression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from memo_zoo.errors import MemoZooError
from memo_zoo.model.latent_expression import ClassifierInfo, LatentExpressionClassifier
from memo_zoo.progress import progress
from memo_zoo.train.part_configs import ExpressionClassifierTraining


@dataclass
class FitReport:
    """Held-out figures of a trained classifier (speakers never seen in training)."""

    labels: tuple[str, ...]
    train_frames: int
    validation_frames: int
    validation_speakers: list[str]
    accuracy: float
    balanced_accuracy: float
    confusion: list[list[int]]  # rows: truth, columns: predicted
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch

    def metrics(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "train_frames": float(self.train_frames), "validation_frames": float(self.validation_frames)}


def split_speakers(speakers: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The held-out speakers: ``round(fraction x count)`` of the distinct ones (at least 1 when there are
    two or more and fraction > 0), drawn by ``seed``."""
    names = sorted(set(speakers))
    count = int(round(fraction * len(names)))
    if fraction > 0 and len(names) > 1:
        count = min(max(count, 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(names))
    return {names[i] for i in order[:count]}


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean over the truth classes present of the share predicted right."""
    totals = matrix.sum(axis=1)
    present = totals > 0
    if not present.any():
        return float("nan")
    return float((np.diag(matrix)[present] / totals[present]).mean())


def draw_references(speakers: Sequence[str], clips: Sequence[str], generator: torch.Generator) -> Tensor:
    """For each frame, the index of a frame drawn uniformly among its speaker's frames of other clips
    (of its own clip when the speaker has only one)."""
    speakers, clips = np.asarray(speakers), np.asarray(clips)
    drawn = np.empty(len(speakers), dtype=np.int64)
    for speaker in np.unique(speakers):
        mine = speakers == speaker
        for clip in np.unique(clips[mine]):
            frames = np.flatnonzero(mine & (clips == clip))
            others = np.flatnonzero(mine & (clips != clip))
            pool = others if len(others) else frames
            drawn[frames] = pool[torch.randint(len(pool), (len(frames),), generator=generator).numpy()]
    return torch.from_numpy(drawn)


def fit_classifier(latents: Tensor, labels: Tensor, speakers: Sequence[str], names: Sequence[str],
                   vae_fingerprint: str, options: ExpressionClassifierTraining | None = None,
                   clips: Sequence[str] | None = None) -> tuple[LatentExpressionClassifier, FitReport]:
    """Train on ``latents`` (N, C, h, w) with ``labels`` (N,) in [0, len(names)), each frame's speaker and,
    for ``options.reference``, each frame's clip (``options``: its optimisation fields; the clips it
    names were read by the caller)."""
    options = options or ExpressionClassifierTraining()
    if latents.ndim != 4 or labels.shape != (latents.shape[0],) or len(speakers) != latents.shape[0]:
        raise ValueError(f"latents (N, C, h, w), labels (N,) and N speakers expected; got {tuple(latents.shape)}, "
                         f"{tuple(labels.shape)} and {len(speakers)}")
    if options.reference and (clips is None or len(clips) != latents.shape[0]):
        raise ValueError("a reference-conditioned classifier needs each frame's clip (clips, N of them)")
    if options.reference and len(set(zip(speakers, clips))) == len(set(speakers)):
        # every speaker has one clip: each frame's reference would show the same expression
        raise MemoZooError("train_expression_classifier.reference: every speaker has a single clip, so no frame "
                           "can be paired with the same person in another expression; use clips that name their "
                           "speaker and show each person in several clips")
    classes = len(names)
    if labels.numel() == 0 or int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise MemoZooError(f"expression classifier: labels must be emotion indices in [0, {classes}); the clips "
                           "without an emotion label are left out before training")
    held_out = split_speakers(speakers, options.validation_fraction, options.seed)
    is_validation = torch.tensor([speaker in held_out for speaker in speakers])
    latents = latents.float()
    train_at, valid_at = torch.nonzero(~is_validation).flatten(), torch.nonzero(is_validation).flatten()
    train_x, train_y = latents[train_at], labels[train_at].long()
    valid_x, valid_y = latents[valid_at], labels[valid_at].long()
    if train_x.shape[0] == 0:
        raise MemoZooError("expression classifier: no training frames left after holding out speakers")
    counts = torch.bincount(train_y, minlength=classes).float()
    weights = torch.where(counts > 0, counts.sum() / (classes * counts.clamp(min=1)), torch.zeros_like(counts))

    generator = torch.Generator().manual_seed(options.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = LatentExpressionClassifier(ClassifierInfo(latents.shape[1], tuple(names), options.width,
                                                          vae_fingerprint, options.reference))

    def references(at: Tensor, drawn: Tensor | None) -> Tensor | None:  # the drawn partners' latents, or none
        return None if drawn is None else latents[drawn[at]]

    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps_per_epoch = max(1, -(-train_x.shape[0] // options.batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, options.epochs * steps_per_epoch)
    losses = []
    model.train()
    for _ in progress(range(options.epochs), desc="expression classifier: training", unit="epoch"):
        order = torch.randperm(train_x.shape[0], generator=generator)
        drawn = draw_references(speakers, clips, generator) if options.reference else None
        total = 0.0
        for start in range(0, order.numel(), options.batch_size):
            index = order[start:start + options.batch_size]
            x = train_x[index]
            sigma = torch.rand((x.shape[0], 1, 1, 1), generator=generator) * options.noise
            x = x + sigma * torch.randn(x.shape, generator=generator)
            loss = F.cross_entropy(model(x, references(train_at[index], drawn)), train_y[index], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * index.numel()
        losses.append(total / order.numel())
    model.eval().requires_grad_(False)

    if valid_x.shape[0]:
        drawn = draw_references(speakers, clips, generator) if options.reference else None
        with torch.no_grad():
            predicted = torch.cat([model(valid_x[i:i + 1024], references(valid_at[i:i + 1024], drawn)).argmax(1)
                                   for i in range(0, valid_x.shape[0], 1024)])
        matrix = confusion_matrix(valid_y.numpy(), predicted.numpy(), classes)
        accuracy = float(np.trace(matrix) / matrix.sum())
        balanced = balanced_accuracy(matrix)
    else:
        matrix, accuracy, balanced = np.zeros((classes, classes), dtype=np.int64), float("nan"), float("nan")
    report = FitReport(tuple(names), int(train_x.shape[0]), int(valid_x.shape[0]), sorted(held_out), accuracy,
                       balanced, matrix.tolist(), losses)
    return model, report
