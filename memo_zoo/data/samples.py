"""Training samples for MEMO: reference, target clip, motion frames, audio windows, emotion (issue 4).

``TalkingHeadSamples`` turns ``ClipRecord``s into the tensors the model is trained on. Each item is
a dict (S = ``size``, F = ``clip_frames``, M = motion frames of this item, W = 2 * audio_window + 1,
P = samples per video frame = round(audio_sample_rate / fps)):

    reference         (3, S, S) float32 in [-1, 1]   identity image (spec L2, L4)
    reference_source  "same_clip" | "other_emotion"
    motion_source     "same_clip" | "other_emotion" (motion decoupling: another clip's frames)
    target            (F, 3, S, S) float32 in [-1, 1]  frames start .. start + F - 1
    motion            (M, 3, S, S) float32 in [-1, 1]  the M frames before ``start``, oldest first (T5);
                      with ``motion_decoupling``, sometimes M consecutive frames of the speaker's clip
                      in another emotion instead
    motion_mask       (M,) bool                       True where ``motion`` holds a real past frame
    audio             (F, W, P) float32: window w of target frame i is the audio of frame
                      start + i + w - audio_window (spec A5), zero outside the track
    audio_clip        (F * P,) float32, the audio under the target frames
    emotion           0-dim int64: index in the label set (E4), len(labels) = "no emotion"
    speaker           int: index in ``speakers`` (sorted), -1 when the clip has no speaker
    clip_id, start    which clip and which first frame the target is
    reference_key     (2,) int64: the reference's (clip index, frame index) in this dataset
    target_keys       (F, 2), motion_keys (M, 2) int64: the same for each target and motion frame

Frame i of a clip is shown during [i / fps, (i + 1) / fps), and its audio is the samples in that
interval, so ``audio[i, audio_window]`` is exactly the sound under ``target[i]``.

Every random choice of an item (motion count, start, reference, motion source) comes from a
generator seeded by (seed, epoch, index) alone, so an item is the same in any worker, in any
order, after a restart; ``set_epoch`` moves to new draws. Condition dropout (L6) is not done here: the trainer does it, so
that its probabilities live with the rest of the training recipe.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from memo_zoo.data.cache import CachedClip, FrameCache
from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.data.media import MediaError
from memo_zoo.emotion import LABEL_SETS
from memo_zoo.errors import MemoZooError
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.data.sample_config import SampleConfig

STAGE = "samples"

# The two label sets spell the catch-all class differently; a clip labelled in one set still
# belongs to that class when training with the other.
_LABEL_ALIASES = {"others": "other", "other": "others"}


class SkippedClipWarning(UserWarning):
    """A clip was left out of the training samples; the message names the file and the reason."""


class TalkingHeadSamples(Dataset):
    """Training items cut from clips, decoded once through a ``FrameCache`` (see the module doc).

    Clips that cannot be decoded, that are too short for a target plus a reference outside it
    (more than ``clip_frames`` frames), or whose audio and video lengths differ by more than
    ``max_av_mismatch`` are skipped with a ``SkippedClipWarning`` and listed in ``skipped``.
    """

    def __init__(self, records: Sequence[ClipRecord], config: SampleConfig | None = None,
                 cache_dir: str | Path | None = None, cache: FrameCache | None = None):
        self.config = config or SampleConfig()
        cfg = self.config
        self.cache = cache or FrameCache(cache_dir, fps=cfg.fps, size=cfg.size, sample_rate=cfg.audio_sample_rate)
        if (self.cache.fps, self.cache.size, self.cache.sample_rate) != (float(cfg.fps), cfg.size,
                                                                         cfg.audio_sample_rate):
            raise ValueError("the FrameCache's fps/size/sample_rate differ from the SampleConfig's")
        self.labels: tuple[str, ...] = LABEL_SETS[cfg.label_set]
        # Built from every record given, not only the usable ones, so that a clip failing to decode
        # does not shift every other speaker's index between runs.
        self.speakers: tuple[str, ...] = tuple(sorted({r.speaker for r in records if r.speaker is not None}))
        self._speaker_index = {name: i for i, name in enumerate(self.speakers)}
        self.epoch = 0
        self.skipped: list[SkippedClip] = []
        self.clips: list[ClipRecord] = []
        self._entries: list[CachedClip] = []
        self._emotions: list[int] = []
        for record in records:
            emotion = self._emotion_index(record)  # a bad label is a recipe/reader bug: raise, don't skip
            reason = self._admit(record)
            if reason is not None:
                self._skip(record, reason)
                continue
            self._emotions.append(emotion)
        if not self.clips:
            raise MemoZooError(f"no usable clips among {len(records)} for training samples"
                               + "".join(f"\n  {s.path}: {s.reason}" for s in self.skipped[:10]))
        self._pools, self._slots = self._decoupling_pools()
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -- construction --------------------------------------------------------------------------

    def _admit(self, record: ClipRecord) -> str | None:
        """Decode (or find) the clip; return why it cannot be used, or None after adding it."""
        cfg = self.config
        try:
            entry = self.cache.entry(record)
        except MediaError as error:
            return error.reason
        if entry.frame_count <= cfg.clip_frames:
            return (f"has {entry.frame_count} frames at {cfg.fps:g} fps; needs more than clip_frames="
                    f"{cfg.clip_frames} (a target plus a reference frame outside it)")
        gap = abs(entry.video_seconds - entry.audio_seconds)
        # The readers check this as well; checked again because a separate audio file
        # (ClipRecord.audio) can belong to another take, and windows would then be misaligned.
        if gap > cfg.max_av_mismatch:
            return (f"audio ({entry.audio_seconds:.3f} s) and video ({entry.video_seconds:.3f} s) lengths "
                    f"differ by {gap:.3f} s > max_av_mismatch={cfg.max_av_mismatch:g} s")
        self.clips.append(record)
        self._entries.append(entry)
        return None

    def _skip(self, record: ClipRecord, reason: str) -> None:
        self.skipped.append(SkippedClip(path=str(record.video), stage=STAGE, reason=reason))
        warnings.warn(f"skipping clip {record.clip_id!r} ({record.video}): {reason}", SkippedClipWarning,
                      stacklevel=3)

    def _emotion_index(self, record: ClipRecord) -> int:
        try:
            return self.emotion_index(record.emotion)
        except ValueError as error:
            raise ValueError(f"clip {record.clip_id!r}: {error}") from None

    def emotion_index(self, emotion: str | None) -> int:
        """The index of ``emotion`` (a clip's or a frame's label; aliases such as ``contempt`` mapped) in
        ``labels``; ``len(labels)`` for None (no label)."""
        if emotion is None:
            return len(self.labels)
        label = emotion if emotion in self.labels else _LABEL_ALIASES.get(emotion)
        if label not in self.labels:
            raise ValueError(f"emotion {emotion!r} is not in the {self.config.label_set} label set "
                             f"({', '.join(self.labels)})")
        return self.labels.index(label)

    def _decoupling_pools(self) -> tuple[list[np.ndarray], list[tuple[int, int, int] | None]]:
        """Per speaker, its emotion-labelled clips sorted by emotion; per clip, (pool, own run).

        A clip's partners (same speaker, different emotion; spec L4) are its pool minus its own
        emotion's contiguous run, so they are drawn without listing them per clip, which would be
        quadratic in a speaker's clip count (MEAD has hundreds per actor).
        """
        none = len(self.labels)
        slots: list[tuple[int, int, int] | None] = [None] * len(self.clips)
        if not self.config.emotion_decoupling and not self.config.motion_decoupling:
            return [], slots
        by_speaker: dict[str, list[int]] = {}
        for i, record in enumerate(self.clips):
            if record.speaker is not None and self._emotions[i] != none:
                by_speaker.setdefault(record.speaker, []).append(i)
        pools = []
        for members in by_speaker.values():
            order = np.array(sorted(members, key=lambda i: (self._emotions[i], i)), dtype=np.int64)
            emotions = np.array([self._emotions[i] for i in order])
            for position, clip in enumerate(order):
                first = int(np.searchsorted(emotions, emotions[position], side="left"))
                last = int(np.searchsorted(emotions, emotions[position], side="right"))
                if last - first < len(order):  # someone of this speaker shows another emotion
                    slots[int(clip)] = (len(pools), first, last)
            pools.append(order)
        return pools, slots

    def _partner(self, clip: int, rng: np.random.Generator) -> int | None:
        """A random clip of the same speaker in a different emotion, or None when there is none."""
        slot = self._slots[clip]
        if slot is None:
            return None
        pool, first, last = slot
        order = self._pools[pool]
        pick = int(rng.integers(len(order) - (last - first)))
        return int(order[pick if pick < first else pick + (last - first)])

    # -- pickling: DataLoader workers under spawn/forkserver get a copy of the dataset ----------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # A pickled memmap is a full in-memory copy; each process reopens its own maps instead.
        state["_arrays"] = {}
        return state

    # -- items -----------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Use the random draws of ``epoch``; call before creating the DataLoader iterator."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        cfg = self.config
        return cfg.samples_per_epoch if cfg.samples_per_epoch is not None else cfg.samples_per_clip * len(self.clips)

    def _open(self, clip: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(clip)
        if arrays is None:
            entry = self._entries[clip]
            arrays = self._arrays[clip] = (entry.frames(), entry.audio())
        return arrays

    # -- whole clips, for the trainer's latent store (memo_zoo.train.latent_cache) ---------------

    def clip_emotion(self, clip: int) -> int:
        """The emotion index every sample of ``clip`` is labelled with (``len(labels)``: no label)."""
        return self._emotions[clip]

    def clip_directory(self, clip: int) -> Path:
        """The frame-cache folder of clip ``clip`` (content-keyed: source file, fps, size)."""
        return self._entries[clip].directory

    def clip_length(self, clip: int) -> int:
        return self._entries[clip].frame_count

    def clip_frames(self, clip: int) -> np.ndarray:
        """Every frame of clip ``clip`` as uint8 (T, S, S, 3) RGB (a read-only map of the cache)."""
        return self._open(clip)[0]

    def clip_images(self, clip: int) -> torch.Tensor:
        """Every frame of clip ``clip`` as (T, 3, S, S) float in [-1, 1], as items carry them."""
        return _to_image(np.asarray(self._open(clip)[0]))

    def rng(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch (all of the item's draws)."""
        return np.random.default_rng([self.config.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        cfg = self.config
        rng = self.rng(index)
        clip = index % len(self.clips)
        frames, audio = self._open(clip)
        count = frames.shape[0]
        F = cfg.clip_frames
        # Draw order is fixed (motion count, start, reference, motion source) so items stay
        # reproducible; the motion source is drawn last, and only when asked for, so that items
        # without motion decoupling are the ones drawn before it existed.
        M = int(rng.choice(cfg.motion_choices))
        start = int(rng.integers(0, count - F + 1))

        other = self._partner(clip, rng) if cfg.emotion_decoupling else None
        if other is not None:
            other_frames, _ = self._open(other)
            pick = int(rng.integers(other_frames.shape[0]))
            reference = _to_image(np.asarray(other_frames[pick]))
            reference_key = (other, pick)
            source = "other_emotion"
        else:
            # Uniform over the frames outside [start, start + F); the constructor guarantees some exist.
            pick = int(rng.integers(count - F))
            pick = pick if pick < start else pick + F
            reference = _to_image(np.asarray(frames[pick]))
            reference_key = (clip, pick)
            source = "same_clip"

        motion_clip, motion_end, motion_source = clip, start, "same_clip"
        if cfg.motion_decoupling and rng.random() < cfg.motion_decoupling:
            donor = self._partner(clip, rng)
            if donor is not None:
                # The M frames before a uniform end in the donor clip, all real when it is long enough.
                length = self._entries[donor].frame_count
                motion_clip, motion_source = donor, "other_emotion"
                motion_end = int(rng.integers(min(M, length), length + 1))
        motion, motion_keys, padding = self._motion(motion_clip, motion_end, M, reference, reference_key)
        mask = torch.zeros(M, dtype=torch.bool)
        mask[padding:] = True

        P = cfg.samples_per_frame
        offsets = np.arange(-cfg.audio_window, cfg.audio_window + 1)
        frame_ids = start + np.arange(F)[:, None] + offsets[None, :]  # (F, W)
        windows = _gather(audio, self._sample_starts(frame_ids)[..., None] + np.arange(P))
        segment = _gather(audio, self._sample_starts(np.array(start)) + np.arange(F * P))

        return {
            "reference": reference,
            "reference_source": source,
            "motion_source": motion_source,
            "target": _to_image(np.asarray(frames[start:start + F])),
            "motion": motion.contiguous(),
            "motion_mask": mask,
            "audio": torch.from_numpy(windows),
            "audio_clip": torch.from_numpy(segment),
            "emotion": torch.tensor(self._emotions[clip], dtype=torch.long),
            "speaker": self._speaker_index.get(self.clips[clip].speaker, -1),
            "clip_id": self.clips[clip].clip_id,
            "start": start,
            # Which frame each image is, as (clip index, frame index): the trainer's latent cache
            # (memo_zoo.train.latent_cache) encodes a frame once however often it comes back.
            "reference_key": torch.tensor(reference_key, dtype=torch.long),
            "target_keys": torch.tensor([(clip, start + i) for i in range(F)], dtype=torch.long),
            "motion_keys": torch.tensor(motion_keys, dtype=torch.long).reshape(M, 2),
        }

    def _motion(self, clip: int, end: int, M: int, reference: torch.Tensor,
                reference_key: tuple[int, int]) -> tuple[torch.Tensor, list[tuple[int, int]], int]:
        """The M frames of ``clip`` before frame ``end``, oldest first, their keys and how many are padding."""
        frames = self._open(clip)[0]
        first_real = max(0, end - M)
        real = np.arange(first_real, end)
        padding = M - len(real)
        if self.config.motion_padding == "reference" and padding:
            past = _to_image(np.asarray(frames[real])) if len(real) else reference.new_empty((0, *reference.shape))
            motion = torch.cat([reference.expand(padding, *reference.shape), past])
            return motion, [reference_key] * padding + [(clip, int(i)) for i in real], padding
        # Only frames near the clip's start need padding, and then first_real == 0: the clip's
        # first frame repeated, i.e. edge padding of the real motion frames.
        shown = np.concatenate([np.zeros(padding, np.int64), real])
        return _to_image(np.asarray(frames[shown])), [(clip, int(i)) for i in shown], padding

    def _sample_starts(self, frame_ids: np.ndarray) -> np.ndarray:
        """First audio sample of each video frame: round(k * rate / fps), exact for 16 kHz at 25 fps.

        Rounding per frame (rather than k * P) keeps frames aligned over long clips when the rate
        is not a multiple of fps (e.g. 533.3 samples per frame at 30 fps).
        """
        return np.rint(frame_ids * (self.config.audio_sample_rate / self.config.fps)).astype(np.int64)


def _to_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [-1, 1]."""
    # A copy: slices of the read-only memmap must not become tensors aliasing the cache file.
    tensor = torch.from_numpy(np.array(frames, dtype=np.uint8, order="C"))
    return tensor.movedim(-1, -3).float().div(127.5).sub(1.0).contiguous()


def _gather(audio: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``audio[index]`` as float32, zero where the index falls outside the track (edges)."""
    out = np.zeros(index.shape, dtype=np.float32)
    valid = (index >= 0) & (index < audio.shape[0])
    if valid.any():
        # Read one contiguous span of the memmap, not a scattered fancy index into it.
        low, high = int(index[valid].min()), int(index[valid].max()) + 1
        out[valid] = np.asarray(audio[low:high])[index[valid] - low]
    return out


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch; motion of different lengths is padded to the batch's longest.

    Padding goes at the FRONT (oldest end) with the item's own first motion frame and a False
    mask, so ``motion[:, -1]`` is the frame just before the target for every item, as the causal
    memory (spec T4) expects the newest frame last.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    longest = max(item["motion"].shape[0] for item in batch)
    motions, masks, motion_keys = [], [], []
    for item in batch:
        motion, mask, keys = item["motion"], item["motion_mask"], item.get("motion_keys")
        missing = longest - motion.shape[0]
        if missing:
            motion = torch.cat([motion[:1].expand(missing, *motion.shape[1:]), motion])
            mask = torch.cat([torch.zeros(missing, dtype=torch.bool), mask])
            if keys is not None:  # the padding repeats the first motion frame: so does its key
                keys = torch.cat([keys[:1].expand(missing, 2), keys])
        motions.append(motion)
        masks.append(mask)
        motion_keys.append(keys)
    keyed = {}
    if all(keys is not None for keys in motion_keys):
        keyed = {"reference_key": torch.stack([item["reference_key"] for item in batch]),
                 "target_keys": torch.stack([item["target_keys"] for item in batch]),
                 "motion_keys": torch.stack(motion_keys)}
    return {
        **keyed,
        "reference": torch.stack([item["reference"] for item in batch]),
        "reference_source": [item["reference_source"] for item in batch],
        "motion_source": [item["motion_source"] for item in batch],
        "target": torch.stack([item["target"] for item in batch]),
        "motion": torch.stack(motions),
        "motion_mask": torch.stack(masks),
        "audio": torch.stack([item["audio"] for item in batch]),
        "audio_clip": torch.stack([item["audio_clip"] for item in batch]),
        "emotion": torch.stack([item["emotion"] for item in batch]),
        "speaker": torch.tensor([item["speaker"] for item in batch], dtype=torch.long),
        "clip_id": [item["clip_id"] for item in batch],
        "start": torch.tensor([item["start"] for item in batch], dtype=torch.long),
    }


class EpochShuffleSampler(Sampler[int]):
    """A permutation of the dataset fixed by (seed, the dataset's current epoch).

    Unlike a sampler drawing from a running generator, the order of epoch e does not depend on how
    many epochs were iterated before, so a resumed run sees the same order as an unbroken one.
    """

    def __init__(self, samples: TalkingHeadSamples, seed: int):
        self.samples = samples
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.samples.epoch]).generate_state(1)[0]))
        return iter(torch.randperm(len(self.samples), generator=generator).tolist())


def _seed_worker(worker_id: int) -> None:
    """Seed a worker's global RNGs from the seed torch gave it (derived from the loader's generator).

    Items do not use global RNGs; this keeps any transform a trainer adds reproducible too.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(samples: TalkingHeadSamples, batch_size: int, num_workers: int = 0, shuffle: bool = True,
                seed: int | None = None, drop_last: bool = False) -> DataLoader:
    """A DataLoader over ``samples`` with ``collate``, an epoch-seeded order and seeded workers.

    Call ``samples.set_epoch(e)`` before each ``iter(loader)``; workers are not persistent, so each
    epoch's workers start from the dataset's current epoch. ``seed`` defaults to the config's.
    """
    seed = samples.config.seed if seed is None else int(seed)
    sampler = EpochShuffleSampler(samples, seed) if shuffle else SequentialSampler(samples)
    return DataLoader(samples, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate, worker_init_fn=_seed_worker if num_workers > 0 else None,
                      generator=torch.Generator().manual_seed(seed), drop_last=drop_last,
                      persistent_workers=False)
