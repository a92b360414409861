"""Training the world measurer on a talking_world's renders, and checking it against held-out truth.

``train_measurer(world, options)`` decodes every clip of the world (``split="all"``), keeps every
``frame_stride``-th frame and splits them:

- held-out clips: of every speaker, the last ``holdout_clips`` regular clips in clip-id order
  (deterministic; a speaker keeps at least one clip for training). Nothing of them is trained on;
  the mouth Pearson r and the expression accuracy are measured on them.
- training frames: every other clip, long clips included, plus ``balanced_frames`` renders per
  speaker (below).
- identity: the identity loss sees the world's ``train`` speakers only. The ``test`` speakers (the
  held-out identities) are never given an identity label; the identity-verification check is on
  all their clip frames: ROC-AUC of the embeddings' cosine for same-person vs different-person
  frame pairs. (Their non-held-out frames do train the mouth and expression heads: the measurer
  is an instrument for videos of those very speakers, the test split's, and a mouth or expression
  reading is not an identity label.)

Balanced renders. A talking_world identity shows only the few emotions of its ~4 clips, so on the
clips alone "this person, hence that emotion" fits the expression labels as well as the face
does, and the measurer learns it: trained on the clips' labels it scored 13 % (chance) on the
default world's held-out clips, most of which show an emotion their speaker's training clips do
not (85 % with the renders below).
So the expression head is trained on frames rendered by the world's own renderer instead: each
speaker with every emotion of the world in turn (intensity drawn from the generator's 0.6..1
range), each frame copying the mouth, pose, blink and gaze of a random frame of that speaker's
training clips, and passed through the clips' H.264 encoder so that they differ from the clips in
content only. Their exact mouth truth trains the mouth head too.

Losses: mean squared error of the standardised mouth outputs (truth ``mouth_area`` and
``mouth_open``); cross-entropy of the expression logits against truth ``emotion`` (spec E4) on
rendered frames whose ``intensity`` >= ``min_intensity`` (a fading expression is ambiguous);
CosFace cross-entropy over the train identities, weighted ``identity_weight`` (at weight 1 it
pulls the shared trunk towards identity so hard that the held-out expression accuracy falls from
85 % to 54 %, the identity AUC being 1.0 either way). Augmentation (whole-pixel shifts, pixel
noise) is available but off: within this training budget it cost held-out accuracy (expression
85 % -> 68 % with a 1-pixel shift and noise 0.02) and the held-out renders cannot show what it
would buy on generated frames. Blur (``blur``: a Gaussian of random sigma on ``blur_probability`` of
the frames, ``gaussian_blur``) is off by default too; it exists because generated frames are as
soft as real ones blurred by about 1 px, which a measurer trained on sharp frames reads as
"neutral" (docs/emotion_diagnosis.md). With ``round_trip`` (an autoencoder's config) every
balanced render is also drawn as that autoencoder decodes it (encode, decode, H.264) and trained on
with the same truth: the default 8 x 8-latent autoencoder draws expressions in shapes a measurer of
the world's own renders reads at chance, so without it no generated video in that latent space can
score. AdamW with a one-cycle learning rate.

Deterministic: initialisation, batch order, renders and augmentation draw from generators seeded
with ``seed``; on one machine with one thread count, the same world and options give the same
weights.

Measured on the default world (``WorldConfig()``: 12 identities, 2 held out; 4 clips of 4-12 s
each + 2 long clips of 60 s; 64 px, 25 fps) with the default options, ``python
benchmarks/world_measurer.py --threads 1`` on a 2-core machine shared with other work: held-out
clips (12, 761 frames): mouth r 0.965 (measured vs truth ``mouth_area``), 0.923 (measured speech
opening vs ``mouth_open``); expression accuracy 85.1 % on 753 frames (mean per-label recall
89.4 %; chance 12.5 %); identity verification on the 2 held-out identities: ROC-AUC 0.997 over
173,755 frame pairs; 71 s wall on one thread (121 s while another process kept the second core
busy; same weights). Quality bar: mouth r >= 0.8 on held-out
clips, expression accuracy well above chance, identity AUC >= 0.9. docs/evaluation.md has the output.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from memo_zoo.data.media import read_frames, write_video
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError
from memo_zoo.progress import progress as progress_bar
from memo_zoo.train.step_loop import StepLoop
from memo_zoo_plugins.datasets.talking_world.api import (ClipRenderer, FaceState, TalkingWorld, TalkingWorldConfig,
                                                         WorldConfig, WorldTruth, load_truth, plan_clips, world_hash)

from .measurer import MeasurerShape, WorldMeasurer
from .stats import pearson, roc_auc
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import MeasurerTraining

# Options that change how fast the measurer is trained, not what it learns (beyond float rounding):
# they are left out of the cache key (store.py).
NON_LEARNING_FIELDS = frozenset({"device", "threads"})

# Expression intensity of the balanced renders: the generator's range per emotion segment
# (world._INTENSITY), so that rendered and clip expressions are equally strong.
_RENDER_INTENSITY = (0.6, 1.0)


class MeasurerReport(BaseModel):
    """The measurer's check on held-out renders of its world (Pearson r, accuracy, ROC-AUC; NaN where
    a figure has nothing to be computed on, e.g. ``identity_auc`` with fewer than 2 held-out identities)."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    world: str = Field(description="talking_world hash of the generation config (world.world_hash)")
    train_identities: int = Field(description="speakers the identity loss was trained on")
    test_identities: int = Field(description="held-out speakers of the identity check")
    train_frames: int = Field(description="training frames per epoch (clip frames + balanced renders)")
    rendered_frames: int = Field(description="balanced renders among the training frames")
    heldout_clips: int
    heldout_frames: int
    mouth_r_area: float = Field(description="held-out clips: measured opening vs truth mouth_area")
    mouth_r_open: float = Field(description="held-out clips: measured speech opening vs truth mouth_open")
    mouth_r_area_vs_open: float = Field(description="held-out clips: measured opening vs truth mouth_open")
    expression_accuracy: float = Field(description="held-out clips, frames with intensity >= min_intensity "
                                                   "(chance: 1/8)")
    expression_balanced_accuracy: float = Field(description="the same, mean of the per-label recalls")
    expression_frames: int
    identity_auc: float = Field(description="held-out identities: same vs different person frame pairs, cosine")
    identity_pairs: int
    final_loss: float = Field(description="mean total loss of the last epoch")
    train_seconds: float = Field(description="wall time of decoding, rendering, training and checking")

    def lines(self) -> list[str]:
        """The report as short aligned lines, for terminals and logs."""
        return [f"{name:30s} {value:.4f}" if isinstance(value, float) else f"{name:30s} {value}"
                for name, value in self.model_dump().items()]


@dataclass
class FrameSet:
    """Frames (uint8 (N, H, W, 3)) and their truth, one row per frame: ``mouth`` (N, 2) =
    (mouth_area, mouth_open); ``emotion`` (spec E4 index), ``intensity``; ``identity`` (index
    among the train speakers, -1 for a held-out identity); ``speaker`` (index into all speakers);
    ``rendered`` (a balanced render, not a clip frame)."""

    frames: torch.Tensor
    mouth: torch.Tensor
    emotion: torch.Tensor
    intensity: torch.Tensor
    identity: torch.Tensor
    speaker: torch.Tensor
    rendered: torch.Tensor
    clips: int

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def join(cls, chunks: list[dict[str, np.ndarray]]) -> "FrameSet | None":
        if not chunks:
            return None
        joined = {key: torch.from_numpy(np.concatenate([c[key] for c in chunks])) for key in chunks[0]}
        return cls(**joined, clips=sum(1 for c in chunks if not c["rendered"].any()))


def _chunk(frames: np.ndarray, mouth_area: np.ndarray, mouth_open: np.ndarray, emotion: np.ndarray,
           intensity: np.ndarray, identity: int, speaker: int, rendered: bool) -> dict[str, np.ndarray]:
    count = len(frames)
    return {"frames": frames, "mouth": np.stack([mouth_area, mouth_open], 1).astype(np.float32),
            "emotion": np.asarray(emotion, np.int64), "intensity": np.asarray(intensity, np.float32),
            "identity": np.full(count, identity, np.int64), "speaker": np.full(count, speaker, np.int64),
            "rendered": np.full(count, rendered)}


def _frame_sets(world: WorldConfig, options: MeasurerTraining,
                progress: bool) -> tuple[dict[str, FrameSet | None], list[str]]:
    """Decode the world (generating it first if needed) into the ``train``, ``heldout`` and
    ``verification`` (all clip frames of the held-out identities) sets; also the train speakers."""
    fields = world.model_dump(include=set(WorldConfig.model_fields))
    records = TalkingWorld(TalkingWorldConfig(**fields, split="all"), progress=progress).clips()
    test_speakers = {r.speaker for r in TalkingWorld(TalkingWorldConfig(**fields, split="test"),
                                                     progress=False).clips()}
    speakers = sorted({r.speaker for r in records})
    train_speakers = [s for s in speakers if s not in test_speakers]
    regular: dict[str, list[str]] = {}
    for record in records:
        if "_long" not in record.clip_id:  # long clip ids end in _longNN
            regular.setdefault(record.speaker, []).append(record.clip_id)
    heldout = set()
    for clip_ids in regular.values():
        keep = min(options.holdout_clips, len(clip_ids) - 1)
        heldout.update(sorted(clip_ids)[len(clip_ids) - keep:] if keep > 0 else [])

    parts: dict[str, list[dict[str, np.ndarray]]] = {"train": [], "heldout": [], "verification": []}
    truths: dict[str, list[WorldTruth]] = {}
    items = progress_bar(records, "world measurer: decoding", unit="clip") if progress else records
    for record in items:
        truth = load_truth(record.truth)
        frames, _ = read_frames(record.video)
        if len(frames) != truth.frames:
            raise MemoZooError(f"world measurer: {record.video} has {len(frames)} frames, its truth "
                               f"{record.truth} {truth.frames}")
        keep = slice(None, None, options.frame_stride)
        identity = train_speakers.index(record.speaker) if record.speaker in train_speakers else -1
        chunk = _chunk(frames[keep], truth.mouth_area[keep], truth.mouth_open[keep], truth.emotion[keep],
                       truth.intensity[keep], identity, speakers.index(record.speaker), rendered=False)
        if record.clip_id in heldout:
            parts["heldout"].append(chunk)
        else:
            parts["train"].append(chunk)
            truths.setdefault(record.speaker, []).append(truth)
        if record.speaker in test_speakers:
            parts["verification"].append(chunk)
    if options.balanced_frames:
        parts["train"] += _balanced_chunks(world, options, truths, train_speakers, speakers)
    sets = {name: FrameSet.join(chunks) for name, chunks in parts.items()}
    if sets["train"] is None:
        raise MemoZooError(f"world measurer: the world at {world.root or 'the cache'} has no training clips")
    return sets, train_speakers


_AUTOENCODERS: dict[str, tuple[Any, str]] = {}


def round_trip_autoencoder(spec: dict[str, Any]) -> tuple[Any, str]:
    """(autoencoder, fingerprint) of a ``round_trip`` option, built through the registry as a
    recipe's model.vae is; kept per process (its fingerprint reads every weight)."""
    import json

    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.components import component_factory
    from memo_zoo.train.latent_cache import vae_fingerprint

    name = json.dumps(spec, sort_keys=True, default=str)
    if name not in _AUTOENCODERS:
        try:
            factory = component_factory(load_registry(), "vae", spec)
        except MemoZooError as error:
            raise MemoZooError(f"world measurer: training.round_trip is not a valid autoencoder: {error}") from None
        vae = factory()  # a missing weights file raises MissingWeightsError, naming it
        if hasattr(vae, "eval"):
            vae.eval()
        _AUTOENCODERS[name] = (vae, vae_fingerprint(vae))
    return _AUTOENCODERS[name]


def _round_tripped(vae: Any, frames: np.ndarray, chunk: int = 64) -> np.ndarray:
    """uint8 (N, S, S, 3) frames through the autoencoder's encode and decode, back to uint8."""
    out = []
    with torch.no_grad():
        for start in range(0, len(frames), chunk):
            x = torch.from_numpy(np.ascontiguousarray(frames[start:start + chunk])).permute(0, 3, 1, 2)
            decoded = vae.decode(vae.encode(x.float() / 127.5 - 1.0))
            out.append(decoded.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def _balanced_chunks(world: WorldConfig, options: MeasurerTraining, truths: dict[str, list[WorldTruth]],
                     train_speakers: list[str], speakers: list[str]) -> list[dict[str, np.ndarray]]:
    """Every speaker showing every emotion of the world in turn (module docstring, "Balanced renders")."""
    # The generator's own renderer (ClipRenderer): it gives the frame and the inner-mouth area
    # normalised exactly as the clips' truth is.
    plans = {plan.speaker: plan for plan in plan_clips(world)}
    rng = np.random.default_rng([options.seed, 1])
    count = options.balanced_frames
    emotion = np.array([PAPER_LABELS.index(world.emotions[k % len(world.emotions)]) for k in range(count)])
    chunks = []
    with tempfile.TemporaryDirectory(prefix="world_measurer_") as temp:
        for speaker in sorted(truths):
            renderer, clips = ClipRenderer(plans[speaker], world.size), truths[speaker]
            intensity = rng.uniform(*_RENDER_INTENSITY, count).astype(np.float32)
            frames = np.empty((count, world.size, world.size, 3), np.uint8)
            area, mouth_open = np.empty(count, np.float32), np.empty(count, np.float32)
            for k in range(count):
                truth = clips[int(rng.integers(len(clips)))]
                i = int(rng.integers(truth.frames))
                state = FaceState(
                    mouth_open=float(truth.mouth_open[i]), mouth_width=float(truth.mouth_width[i]),
                    mouth_round=float(truth.mouth_round[i]), emotion=PAPER_LABELS[int(emotion[k])],
                    intensity=float(intensity[k]), blink=float(truth.blink[i]), yaw=float(truth.yaw[i]),
                    pitch=float(truth.pitch[i]), roll=float(truth.roll[i]), gaze_x=float(truth.gaze_x[i]),
                    gaze_y=float(truth.gaze_y[i]))
                frames[k], area[k] = renderer(state)
                mouth_open[k] = truth.mouth_open[i]
            identity = train_speakers.index(speaker) if speaker in train_speakers else -1
            versions = [frames]
            if options.round_trip is not None:
                # as a generated video's frames: decoded by the autoencoder, then encoded to H.264
                versions.append(_round_tripped(round_trip_autoencoder(options.round_trip)[0], frames))
            for version, drawn in enumerate(versions):
                path = Path(temp) / f"{speaker}-{version}.mp4"
                write_video(path, drawn, world.fps)
                decoded, _ = read_frames(path)
                chunks.append(_chunk(decoded, area, mouth_open, emotion, intensity, identity, speakers.index(speaker),
                                     rendered=True))
    return chunks


def _shift(x: torch.Tensor, generator: torch.Generator, pixels: int) -> torch.Tensor:
    """Each frame moved by a whole number of pixels (up to ``pixels`` each way), edges repeated.
    Whole pixels: a sub-pixel (interpolated) shift blurs the mouth opening, a few pixels tall at
    64 px (with bilinear shifts and scaling the held-out mouth r fell from 0.85 to 0.47)."""
    if pixels <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def blur_sigmas(count: int, generator: torch.Generator, max_sigma: float, probability: float) -> torch.Tensor:
    """Each frame's augmentation blur: sigma uniform in [0, ``max_sigma``] pixels on ``probability``
    of the frames, 0 (unchanged) on the others."""
    chosen = torch.rand(count, generator=generator) < probability
    return torch.where(chosen, torch.rand(count, generator=generator) * max_sigma, torch.zeros(count))


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Frames (N, C, H, W) each blurred by a Gaussian of its own ``sigma`` (N,) pixels: separable,
    truncated at 3 sigma of the largest, edges repeated; sigma 0 leaves a frame unchanged."""
    blurred = sigma > 0
    if not blurred.any():
        return x
    n, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma[blurred, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(x)
    rows = blurred.to(x.device)
    picked = x[rows]
    groups = len(picked) * c  # one group per (frame, channel): each frame's kernel on its own channels
    weights = kernel.repeat_interleave(c, 0)
    flat = F.pad(picked.reshape(1, groups, h, w), (radius,) * 4, mode="replicate")
    flat = F.conv2d(flat, weights[:, None, None, :], groups=groups)
    flat = F.conv2d(flat, weights[:, None, :, None], groups=groups)
    out = x.clone()
    out[rows] = flat.reshape(len(picked), c, h, w)
    return out


def _check(measurer: WorldMeasurer, sets: dict[str, FrameSet | None], options: MeasurerTraining) -> dict[str, Any]:
    """Mouth r and expression accuracy on the held-out clips, identity AUC on the held-out identities."""
    figures: dict[str, Any] = {"mouth_r_area": math.nan, "mouth_r_open": math.nan, "mouth_r_area_vs_open": math.nan,
                               "expression_accuracy": math.nan, "expression_balanced_accuracy": math.nan,
                               "expression_frames": 0}
    heldout = sets["heldout"]
    if heldout is not None:
        m = measurer.measure(heldout.frames)
        truth = heldout.mouth.double().numpy()
        figures.update(mouth_r_area=pearson(m.mouth_area, truth[:, 0]), mouth_r_open=pearson(m.mouth_open, truth[:, 1]),
                       mouth_r_area_vs_open=pearson(m.mouth_area, truth[:, 1]))
        strong = heldout.intensity.numpy() >= options.min_intensity
        if strong.any():
            label, measured = heldout.emotion.numpy()[strong], m.expression_label[strong]
            recalls = [np.mean(measured[label == c] == c) for c in np.unique(label)]
            figures.update(expression_accuracy=float(np.mean(measured == label)),
                           expression_balanced_accuracy=float(np.mean(recalls)), expression_frames=int(strong.sum()))
    figures["identity_auc"], figures["identity_pairs"] = _identity_check(measurer, sets["verification"], options)
    return figures


def _identity_check(measurer: WorldMeasurer, frames: FrameSet | None, options: MeasurerTraining) -> tuple[float, int]:
    """ROC-AUC of the embeddings' cosine for same- vs different-speaker pairs of held-out identities."""
    if frames is None or len(torch.unique(frames.speaker)) < 2:
        return math.nan, 0
    speakers = torch.unique(frames.speaker).tolist()
    per_speaker = max(1, options.identity_check_frames // len(speakers))
    chosen = []
    for s in speakers:  # evenly spread over each speaker's clips, the same number per speaker
        rows = torch.nonzero(frames.speaker == s).flatten().numpy()
        chosen.append(rows[np.unique(np.linspace(0, len(rows) - 1, min(per_speaker, len(rows))).round().astype(int))])
    rows = np.concatenate(chosen)
    embedding = measurer.measure(frames.frames[rows]).identity
    labels = frames.speaker.numpy()[rows]
    i, j = np.triu_indices(len(rows), k=1)
    cosine = np.einsum("nd,nd->n", embedding[i], embedding[j])
    return roc_auc(cosine, labels[i] == labels[j]), len(i)


def train_measurer(world: WorldConfig | dict, options: MeasurerTraining | dict | None = None,
                   progress: bool = True) -> tuple[WorldMeasurer, MeasurerReport]:
    """Train a measurer on ``world`` (generated first if missing) and check it (module docstring).
    Returns it in eval mode on the CPU, with its report."""
    world = world if isinstance(world, WorldConfig) else WorldConfig(**world)
    options = options if isinstance(options, MeasurerTraining) else MeasurerTraining(**(options or {}))
    previous_threads = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(options.threads)
    try:
        return _train(world, options, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _train(world: WorldConfig, options: MeasurerTraining, progress: bool) -> tuple[WorldMeasurer, MeasurerReport]:
    started = time.perf_counter()
    sets, train_speakers = _frame_sets(world, options, progress)
    train = sets["train"]
    device = torch.device(options.device)
    torch.manual_seed(options.seed)  # initialisation
    generator = torch.Generator().manual_seed(options.seed)  # batch order and augmentation
    shape = MeasurerShape(size=options.size or world.size, width=options.width, embed_dim=options.embed_dim,
                          identities=max(1, len(train_speakers)))
    measurer = WorldMeasurer(shape)
    mean, std = train.mouth.mean(0), train.mouth.std(0)
    measurer.mouth_mean.copy_(mean)
    measurer.mouth_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))  # a world without speech
    measurer.to(device).train()
    # the expression head learns from the balanced renders (module docstring), or from every frame without them
    expression_rows = ((train.rendered if options.balanced_frames else torch.ones(len(train), dtype=torch.bool))
                       & (train.intensity >= options.min_intensity))

    steps_per_epoch = max(1, len(train) // options.batch_size)  # full batches: BatchNorm needs > 1 frame
    optimiser = torch.optim.AdamW(measurer.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=options.learning_rate, pct_start=0.2,
                                                   total_steps=options.epochs * steps_per_epoch)
    epoch_loss = math.nan
    # The shared step loop, one step an epoch: the bar, and Ctrl-C / SIGTERM taken after the epoch.
    with StepLoop(options.epochs, "world measurer: training", unit="epoch", show=progress) as loop:
        for _ in loop:
            order = torch.randperm(len(train), generator=generator)
            total = 0.0
            for step in range(steps_per_epoch):
                rows = order[step * options.batch_size:(step + 1) * options.batch_size]
                x = _shift(measurer.to_input(train.frames[rows]), generator, options.shift_pixels)
                if options.blur:
                    x = gaussian_blur(x, blur_sigmas(len(x), generator, options.blur, options.blur_probability))
                if options.noise:
                    x = (x + torch.randn(x.shape, generator=generator).to(device) * options.noise).clamp(-1, 1)
                out = measurer(x)
                loss = F.mse_loss(measurer.standardised_mouth(out.mouth),
                                  measurer.standardised_mouth(train.mouth[rows].to(device)))
                known = (train.identity[rows] >= 0).to(device)
                if known.any() and options.identity_weight:
                    target = train.identity[rows].to(device)[known]
                    cosine = out.identity[known] @ F.normalize(measurer.identity_classes, dim=1).T
                    margin = F.one_hot(target, shape.identities) * options.identity_margin  # CosFace: s (cos - m)
                    loss = loss + options.identity_weight * F.cross_entropy(
                        options.identity_scale * (cosine - margin), target)
                labelled = expression_rows[rows].to(device)
                if labelled.any():
                    loss = loss + F.cross_entropy(out.expression[labelled], train.emotion[rows].to(device)[labelled])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach())
            epoch_loss = total / steps_per_epoch
            loop.advance()
    measurer.eval()

    figures = _check(measurer, sets, options)
    measurer.cpu()
    heldout, verification = sets["heldout"], sets["verification"]
    report = MeasurerReport(
        world=world_hash(world), train_identities=len(train_speakers),
        test_identities=len(torch.unique(verification.speaker)) if verification is not None else 0,
        train_frames=len(train), rendered_frames=int(train.rendered.sum()),
        heldout_clips=heldout.clips if heldout is not None else 0,
        heldout_frames=len(heldout) if heldout is not None else 0,
        final_loss=epoch_loss, train_seconds=round(time.perf_counter() - started, 2), **figures)
    return measurer, report
