"""Expression guidance: steer each denoising step's clean prediction towards the requested emotion (E6).

With rectified flow (z_t = (1 - t) x0 + t eps, v = eps - x0) the velocity ``v`` at ``z_t`` predicts
the clean latents ``x0 = z_t - t v``. Expression guidance moves that prediction up the gradient of
the latent expression classifier's log-probability of the requested label:

    x0' = x0 + s * grad_x0 log p(label | x0),        v' = (z_t - x0') / t = v - s * grad / t

so an Euler step from ``z_t`` heads for ``x0'`` instead of ``x0``; on the last step (t_next = 0) the
returned latents are exactly ``x0'``. The gradient is taken at the prediction, through the small
classifier only, never through the diffusion network (one extra backward of a few thousand
parameters per step), so it costs nothing beside the network's forwards. It vanishes where the
classifier already reads the label with confidence, which keeps a face that shows the requested
expression as it is; each frame is guided by its own gradient.

Why it is needed (docs/emotion_diagnosis.md): on the CPU-scale network the label changes the
velocity as a weak, global shift, and whether a training learns to draw the label at all depends on
the seed; classifier-free guidance can only amplify what the network learned. This guide brings the
expression from a model that learned nothing else.

Frames whose clip has no label (the "no emotion" index) are not guided. A reference-conditioned
classifier (``memo_zoo.model.latent_expression``) reads every frame beside the portrait's latents,
which the sampler passes along.

``keep_out`` boxes (left, top, right, bottom in fractions of the frame) multiply the gradient by a
mask m that is 0 on latent cells inside them and, on a cell a box cuts, the share of it outside
(``memo_zoo.model.latent_boxes.keep_out_mask``):

    x0' = x0 + s * m * grad

Why: the expression classifier reads the whole face, the mouth included (a smile, an open mouth of
surprise), so its gradient also reshapes the lips, against the audio. Keeping it out of the mouth
box leaves the lips to the network's audio conditioning and the expression to the rest of the face
(docs/emotion_diagnosis.md section 15).

With an ``ensemble`` of K classifiers (``classifier`` and the further files), the guide climbs the
mean of their log-probabilities, a product of experts:

    x0' = x0 + s * m * (1/K) sum_k grad log p_k(label | x0)

Why: a classifier trained on a few hundred people reads new faces at 41-46 %, and its gradient also
follows what only it has learned (most of a single classifier's step convinces the classifier and
not the measurer: section 12). Classifiers trained on different people share the expression and
differ in their shortcuts, so averaging their gradients keeps the first and thins the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from memo_zoo.errors import MemoZooError
from memo_zoo.generate.config import ExpressionGuidanceConfig, within_interval
from memo_zoo.model.latent_boxes import keep_out_mask
from memo_zoo.model.latent_expression import LatentExpressionClassifier, load_classifier

MIN_TIME = 1e-3  # v' divides by t; solvers never evaluate at t = 0, this only guards a custom one


class ExpressionGuide:
    """``config``'s classifier, loaded once, applied to one velocity evaluation at a time."""

    def __init__(self, config: ExpressionGuidanceConfig, classifier: LatentExpressionClassifier,
                 device: torch.device, ensemble: Sequence[LatentExpressionClassifier] = ()):
        if len(ensemble) != len(config.ensemble):
            raise MemoZooError(f"expression_guidance.ensemble names {len(config.ensemble)} classifiers, "
                               f"{len(ensemble)} were given")
        self.config = config
        self.classifier = classifier.to(device)
        # (file, classifier) for every member, ``classifier`` first: errors name the file
        self.members = [(Path(config.classifier), self.classifier)] + [
            (Path(path), member.to(device)) for path, member in zip(config.ensemble, ensemble)]
        labels = classifier.info.labels
        for path, member in self.members[1:]:
            if member.info.labels != labels:
                raise MemoZooError(f"expression_guidance.ensemble {path} reads the labels {list(member.info.labels)}, "
                                   f"the classifier {config.classifier} reads {list(labels)}")
        self._masks: dict[tuple[int, int, torch.device], Tensor] = {}  # keep_out masks by latent grid, made once

    @classmethod
    def load(cls, config: ExpressionGuidanceConfig, labels: tuple[str, ...], device: torch.device) -> "ExpressionGuide":
        """``config.classifier`` and its ``ensemble``, each refused when it reads other labels than the
        network's (the file named)."""
        return cls(config, load_classifier(Path(config.classifier), labels), device,
                   [load_classifier(Path(path), labels) for path in config.ensemble])

    def check_latents(self, latent: Tensor) -> None:
        """Refuse latents of another channel count than a classifier's, naming its file."""
        for path, member in self.members:
            channels = member.info.latent_channels
            if latent.shape[-3] != channels:
                raise MemoZooError(f"expression_guidance classifier {path}: reads {channels}-channel latents, "
                                   f"the VAE gives {latent.shape[-3]}")

    def active_at(self, t: float) -> bool:
        return self.config.scale > 0 and within_interval(self.config.interval, t)

    def velocity(self, sample: Tensor, t: float, velocity: Tensor, label: int,
                 reference: Tensor | None = None) -> Tensor:
        """The guided velocity ``v - s * grad / t`` (module docstring); ``velocity`` itself when the
        guide is off at ``t`` or the label is outside the classifier's classes ("no emotion").
        ``reference``: the portrait's latents, read by a reference-conditioned classifier."""
        if not self.active_at(t) or not 0 <= label < len(self.classifier.info.labels):
            return velocity
        clean = sample - t * velocity
        return velocity - self.config.scale * self.gradient(clean, label, reference) / max(float(t), MIN_TIME)

    def gradient(self, clean: Tensor, label: int, reference: Tensor | None = None) -> Tensor:
        """grad log p(label | clean), averaged over the ensemble, zero inside the ``keep_out`` boxes (module
        docstring)."""
        grad = sum(log_prob_gradient(member, clean, label, reference) for _, member in self.members)
        grad = grad / len(self.members)
        if not self.config.keep_out:
            return grad
        return grad * self.mask(clean.shape[-2], clean.shape[-1], clean.device).to(grad.dtype)

    def log_probs(self, frames: Tensor, reference: Tensor | None = None) -> Tensor:
        """(N, labels): the ensemble's mean log p(label | frame) for frames (N, C, h, w), the quantity whose
        gradient the guide follows."""
        total = sum(torch.log_softmax(classifier_logits(member, frames, reference), dim=-1)
                    for _, member in self.members)
        return total / len(self.members)

    def mask(self, height: int, width: int, device: torch.device) -> Tensor:
        """(height, width): the ``keep_out`` mask of this latent grid."""
        key = (height, width, device)
        if key not in self._masks:
            self._masks[key] = keep_out_mask(self.config.keep_out, height, width).float().to(device)
        return self._masks[key]


def log_prob_gradient(classifier: LatentExpressionClassifier, clean: Tensor, label: int,
                      reference: Tensor | None = None) -> Tensor:
    """grad of sum over frames of log p(label | frame) at ``clean`` (..., C, h, w), same shape; works
    inside ``torch.inference_mode`` (the sampler's) and autocast (computed in float32). ``reference``
    (one (C, h, w) frame or one per frame) is read, never moved, by a reference-conditioned classifier
    and ignored by a plain one."""
    shape = clean.shape
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(clean.device.type, enabled=False):
        frames = clean.detach().reshape(-1, *shape[-3:]).float().clone().requires_grad_(True)
        if reference is not None and classifier.info.reference:
            # a copy: the sampler's reference is an inference tensor, which autograd may not record
            # (a plain member ignores it: no copy)
            reference = reference.detach().float().reshape(-1, *shape[-3:]).clone()
        log_p = torch.log_softmax(classifier_logits(classifier, frames, reference), dim=-1)[:, label].sum()
        (grad,) = torch.autograd.grad(log_p, frames)
    return grad.reshape(shape).to(clean.dtype)


def classifier_logits(classifier: LatentExpressionClassifier, frames: Tensor, reference: Tensor | None) -> Tensor:
    """The classifier's logits of ``frames`` (N, C, h, w), beside ``reference`` when it was trained to read the
    portrait (which it then needs: a clear error without it), ignoring ``reference`` otherwise."""
    if not classifier.info.reference:
        return classifier(frames)
    if reference is None:
        raise MemoZooError("this expression classifier reads the portrait's latents too (it was trained "
                           "with reference: true); none was given")
    return classifier(frames, reference)
