"""A classifier of the facial expression in one frame's VAE latents: the guide of expression guidance.

Expression guidance (``memo_zoo.generate.expression_guidance``, docs/method.md E6) moves every
denoising step's predicted clean latents up the gradient of ``log p(label | x0)`` of this network.
It reads latents, not pixels, so the gradient costs one small backward pass per step and never
goes through the VAE's decoder or the diffusion network.

The architecture is deliberately small and smooth (3x3 convolutions, SiLU, one stride-2 step, an
adaptive pool to 4 x 4 so that where a cell is on the face still counts, one linear layer): a
large classifier on a 8 x 8 grid learns features a gradient can satisfy with changes no decoder
draws. ``memo_zoo.train.latent_expression`` trains it on the training clips' latents with noise
added, so that it also reads the blurred predictions of the noisier steps.

A reference-conditioned classifier (``info.reference``) also reads the latents of the reference
portrait of the same person, and sees ``(x - reference, x)``: the difference cancels what the
person looks like, so it learns what an expression changes rather than who shows it. With a few
dozen people a plain classifier learns the people and reads new faces at chance
(docs/emotion_diagnosis.md section 12); at generation the portrait is always at hand, so the guide
can use it.

A saved classifier is one safetensors file whose metadata says what it reads: the latent
channels, the label names (their order is the emotion index order of the network it guides), the
width, whether it reads a reference and the fingerprint of the VAE whose latents it was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from memo_zoo.errors import MemoZooError, MissingWeightsError

POOLED = 4  # the pooled grid: coarse enough to be smooth, fine enough to tell brows from mouth
FORMAT = "memo_zoo.latent_expression/1"


@dataclass(frozen=True)
class ClassifierInfo:
    """What a saved classifier reads and predicts (its file's metadata)."""

    latent_channels: int
    labels: tuple[str, ...]
    width: int
    vae_fingerprint: str
    reference: bool = False  # reads (x - reference, x): the module docstring

    def as_metadata(self) -> dict[str, str]:
        return {"format": FORMAT, "latent_channels": str(self.latent_channels), "labels": json.dumps(self.labels),
                "width": str(self.width), "vae_fingerprint": self.vae_fingerprint,
                "reference": json.dumps(self.reference)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], path: Path) -> "ClassifierInfo":
        if metadata.get("format") != FORMAT:
            raise MemoZooError(f"{path}: not a latent expression classifier (metadata format "
                               f"{metadata.get('format')!r}, expected {FORMAT!r})")
        try:
            reference = json.loads(metadata.get("reference", "false"))
            if not isinstance(reference, bool):
                raise ValueError(f"reference is {reference!r}, not true or false")
            return cls(int(metadata["latent_channels"]), tuple(json.loads(metadata["labels"])),
                       int(metadata["width"]), metadata.get("vae_fingerprint", ""), reference)
        except (KeyError, ValueError) as error:
            raise MemoZooError(f"{path}: damaged latent expression classifier metadata ({error})") from error


class LatentExpressionClassifier(nn.Module):
    """(N, C, h, w) latents [and the person's (N, C, h, w) reference latents] -> (N, classes) logits
    (module docstring)."""

    def __init__(self, info: ClassifierInfo):
        super().__init__()
        self.info = info
        width, channels = info.width, info.latent_channels
        self.body = nn.Sequential(
            nn.Conv2d(2 * channels if info.reference else channels, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(POOLED),
        )
        self.head = nn.Linear(2 * width * POOLED * POOLED, len(info.labels))

    def forward(self, latents: Tensor, reference: Tensor | None = None) -> Tensor:
        if latents.ndim != 4 or latents.shape[1] != self.info.latent_channels:
            raise ValueError(f"expected (N, {self.info.latent_channels}, h, w) latents, got {tuple(latents.shape)}")
        if self.info.reference:
            if reference is None or reference.shape[-3:] != latents.shape[-3:]:
                got = None if reference is None else tuple(reference.shape)
                raise ValueError(f"this classifier reads the reference latents too: expected {tuple(latents.shape)} "
                                 f"(or one frame to broadcast), got {got}")
            reference = reference.expand_as(latents)
            latents = torch.cat([latents - reference, latents], dim=1)
        return self.head(self.body(latents).flatten(1))

    def save(self, path: Path) -> None:
        """Write the weights and ``info`` to ``path`` atomically (one safetensors file)."""
        from safetensors.torch import save_file

        from memo_zoo.atomic import write_atomically

        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        write_atomically(Path(path), lambda temp: save_file(state, temp, metadata=self.info.as_metadata()))


def read_info(path: Path) -> ClassifierInfo:
    """What a saved classifier reads (its metadata only), naming the file when it cannot be read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise MemoZooError(f"{path}: cannot read the latent expression classifier ({error})") from error
    return ClassifierInfo.from_metadata(metadata, Path(path))


def load_classifier(path: Path, labels: Sequence[str] | None = None,
                    latent_channels: int | None = None) -> LatentExpressionClassifier:
    """Load a classifier saved by ``save``; with ``labels`` / ``latent_channels``, refuse one that reads
    other labels or latents, naming the file and both values."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"latent expression classifier {path} does not exist (train it with the "
                                  "experiment task's train_expression_classifier option, or give its path)")
    info = read_info(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise MemoZooError(f"{path}: cannot read the latent expression classifier ({error})") from error
    if labels is not None and tuple(labels) != info.labels:
        raise MemoZooError(f"{path}: the classifier reads the labels {list(info.labels)}, the network's label set "
                           f"is {list(labels)}")
    if latent_channels is not None and latent_channels != info.latent_channels:
        raise MemoZooError(f"{path}: the classifier reads {info.latent_channels}-channel latents, the VAE gives "
                           f"{latent_channels}")
    model = LatentExpressionClassifier(info)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise MemoZooError(f"{path}: weights do not match the classifier its metadata describes ({error})") from error
    return model.eval().requires_grad_(False)
