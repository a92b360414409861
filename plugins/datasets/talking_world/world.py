"""Generator of the talking_world dataset: synthetic talking-head clips in MEMO's layout, with truth.

talking_world (issue 4) is memo-zoo's embedded default dataset. It exists so that memo-zoo runs
with no download and so that MEMO's claims (spec §0: lips in sync, identity kept over long videos,
expression following the audio's emotion, spec E4) can be *measured* against exact ground truth.
This module puts the parts together: speech (:mod:`.speech`, eSpeak NG), mouth motion
(:mod:`.visemes`), identities and the face renderer (:mod:`.identity`, :mod:`.face`), head pose
and blinks (:mod:`.motion`) and the optional real-photo tier (:mod:`.real_photo`).

:func:`generate` writes, under the world's root::

    world.json                      the generation config (a different config in the same root is
                                    refused rather than mixed in)
    metadata.jsonl                  MEMO's index (spec §11: key ``video``), one line per clip,
                                    plus clip_id, speaker, emotion, emotions, text, voice, split,
                                    truth, duration, frames, fps, size, tier, identity
    data/video/<clip_id>.mp4        H.264 + AAC, 16 kHz mono speech muxed in (spec D3); written by
                                    memo_zoo.data.media.write_video (byte-reproducible H.264 + AAC)
    data/truth/<clip_id>.npz        per-frame ground truth (see :mod:`.truth`)
    data/records/<clip_id>.json     per-clip completion record (the metadata line + file sizes)

Determinism: every clip is a pure function of (config, clip plan entry): its random draws come
from ``SeedSequence([seed, kind, identity, index])``, never from a shared stream, so the number of
worker processes and the order clips finish in change nothing; the truth files are zipped with a
fixed timestamp, so identical configs give identical bytes.

Resume: a clip is complete when its record exists and its video and truth have the sizes the
record lists; the record is written last (each file atomically, temp + rename), so a generation
killed at any point continues with exactly the missing clips. ``metadata.jsonl`` is rebuilt from
the records at the end (atomically), and only rewritten when its content changes.

Audio length equals video length exactly: the frame count is chosen so that it covers a whole
number of 16 kHz samples (at 30 fps, a multiple of 3 frames) and the speech is padded with
silence (or cut, at the maximum length) to ``frames * 16000 / fps`` samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from memo_zoo.atomic import write_atomically, write_text_atomically
from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.data.media import write_video
from memo_zoo.errors import MemoZooError

from .speech import SAMPLE_RATE, VOICES, Utterance, make_script, synthesize_script
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import IDENTITY_STRIDE as _IDENTITY_STRIDE, MAX_IDENTITIES as _MAX_IDENTITIES, WorldConfig  # noqa: F401

# Bump when the generator's output changes for the same config: it is part of the root's hash,
# so a cached world from an older generator is never mistaken for the current one.
FORMAT_VERSION = 1

# Fields that do not change a single byte of the output (where to write, how many processes).
_NON_GENERATION_FIELDS = frozenset({"root", "workers"})

# Head-pose amplitude range per clip (radians of yaw; pitch/roll are smaller, see motion.py).
# Capped well inside face.MAX_POSE (0.6) where the renderer's 2.5D approximation holds.
_POSE_AMPLITUDE = (0.12, 0.42)
_BLINK_RATE = (10.0, 25.0)          # blinks per minute, the conversational range
_INTENSITY = (0.6, 1.0)             # expression intensity per emotion segment
_PAUSE = (0.25, 0.55)               # seconds between sentences, per clip
# An emotion change fades the old expression out and the new one in, each over half of this:
# faces do not jump between expressions within one frame.
_RAMP_SECONDS = 0.4
# Emotion segments in a clip that changes emotion: one change per ~10 s, at least one.
_SECONDS_PER_EMOTION = 10.0
# Eyes keep contact with the camera while the head turns: the iris counter-rotates (gaze is the
# iris offset relative to the head, face.FaceState; 1.2 per radian compensates about half of the
# turn, as eyes do when the head leads a little).
_GAZE_COMPENSATION = 1.2
_MALE_MARKERS = ("stubble", "goatee", "full")

# Seed-sequence tags of the kinds of clip, so that a regular, a long and a photo clip with the
# same indices never share random draws.
_KIND_TAG = {"regular": 0, "long": 1, "photo": 2, "identity": 3, "prosody": 4}


# ----------------------------------------------------------------------------------- plan


def generation_fields(config: WorldConfig) -> dict[str, Any]:
    """The fields that determine the output, JSON-ready (only WorldConfig's own: a subclass's
    extra fields, such as the dataset's ``split``, do not change what is generated)."""
    data = config.model_dump(mode="json", include=set(WorldConfig.model_fields) - _NON_GENERATION_FIELDS)
    return {"format": FORMAT_VERSION, **data}


def world_hash(config: WorldConfig) -> str:
    """Short hash naming the default root of ``config``'s world."""
    text = json.dumps(generation_fields(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def world_root(config: WorldConfig) -> Path:
    """Where ``config``'s world lives (reads the settings only when ``root`` is unset)."""
    if config.root is not None:
        return Path(config.root).expanduser()
    from memo_zoo.settings import get_settings  # settings read from the environment at call time
    return get_settings().cache_dir / "talking_world" / world_hash(config)


@dataclass(frozen=True)
class ClipPlan:
    """One clip to generate: everything a worker needs besides the config."""

    clip_id: str
    kind: str                # "regular" | "long" | "photo"
    speaker: str
    identity: int            # index of the synthetic identity; -1 for the photo tier
    identity_seed: int       # FaceIdentity seed; -1 for the photo tier
    index: int               # clip number within its kind (and identity)
    voice: str
    split: str
    min_seconds: float
    max_seconds: float
    primary_emotion: str     # the clip's first emotion (cycled per identity for label balance)
    # The voice speaks emotion k of the world's order with the prosody of emotion k + shift (mod
    # the count); 0 = the voice matches the face (WorldConfig.prosody_mismatch).
    prosody_shift: int = 0


def _seq(config: WorldConfig, *keys: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([config.seed, *keys])


def _identity_voice(config: WorldConfig, identity_seed: int, index: int) -> str:
    """One voice per identity; bearded / moustached faces get a male voice when the config has one."""
    from .identity import FaceIdentity
    ident = FaceIdentity.from_seed(identity_seed)
    rng = np.random.default_rng(_seq(config, _KIND_TAG["identity"], index))
    males = [v for v in config.voices if VOICES[v].gender == "male"]
    pool = males if (ident.beard in _MALE_MARKERS or ident.moustache) and males else config.voices
    return pool[int(rng.integers(len(pool)))]


def plan_clips(config: WorldConfig) -> list[ClipPlan]:
    """All clips of the world, in clip-id order; a pure function of the config."""
    n_id = config.identities
    width = max(3, len(str(n_id - 1)))
    test_ids = list(range(n_id - config.test_identities, n_id))
    train_ids = list(range(n_id - config.test_identities))
    plans: list[ClipPlan] = []
    speakers: dict[int, tuple[str, int, str, str, int]] = {}
    for i in range(n_id):
        seed_i = config.seed * _IDENTITY_STRIDE + i
        # A per-identity offset into the emotion cycle: every identity shows varied emotions and
        # the labels stay balanced over the world (uniform draws would leave some identities with
        # one emotion only).
        offset = int(np.random.default_rng(_seq(config, _KIND_TAG["identity"], i, 1)).integers(len(config.emotions)))
        speakers[i] = (f"tw_id{i:0{width}d}", seed_i, _identity_voice(config, seed_i, i),
                       "test" if i in test_ids else "train", offset)
    lo, hi = config.seconds
    for i in range(n_id):
        name, seed_i, voice, split, offset = speakers[i]
        for c in range(config.clips_per_identity):
            plans.append(ClipPlan(f"{name}_c{c:02d}", "regular", name, i, seed_i, c, voice, split, lo, hi,
                                  config.emotions[(offset + c) % len(config.emotions)],
                                  _prosody_shift(config, i, c, split)))
    for j in range(config.long_clips):
        # Alternate train / test so that long-video identity retention can be measured on
        # held-out speakers too.
        pool = test_ids if (j % 2 == 1 and test_ids) else train_ids
        i = pool[(j // 2) % len(pool)]
        name, seed_i, voice, split, offset = speakers[i]
        plans.append(ClipPlan(f"{name}_long{j:02d}", "long", name, i, seed_i, j, voice, split,
                              config.long_seconds, config.long_seconds,
                              config.emotions[(offset + j + 1) % len(config.emotions)]))
    regular = n_id * config.clips_per_identity
    if config.photo_fraction > 0 and regular > 0:
        # Photo clips come on top of the identities' clips, as many as make them photo_fraction
        # of the regular + photo clips.
        n_photo = max(1, int(round(config.photo_fraction * regular / (1.0 - config.photo_fraction))))
        # The portrait is a woman's: a female voice when the config has one.
        pool = [v for v in config.voices if VOICES[v].gender == "female"] or config.voices
        voice = pool[int(np.random.default_rng(_seq(config, _KIND_TAG["photo"])).integers(len(pool)))]
        for k in range(n_photo):
            plans.append(ClipPlan(f"tw_photo_c{k:03d}", "photo", "tw_photo", -1, -1, k, voice, config.photo_split,
                                  lo, hi, config.emotions[k % len(config.emotions)]))
    return sorted(plans, key=lambda p: p.clip_id)


def _prosody_shift(config: WorldConfig, identity: int, clip: int, split: str) -> int:
    """The clip's shift of the voice's emotion against the face's (ClipPlan.prosody_shift)."""
    if config.prosody_mismatch <= 0 or split != "train" or len(config.emotions) < 2:
        return 0
    rng = np.random.default_rng(_seq(config, _KIND_TAG["prosody"], identity, clip))
    if rng.random() >= config.prosody_mismatch:
        return 0
    return int(rng.integers(1, len(config.emotions)))


# ----------------------------------------------------------------------------------- one clip


def _frame_step(fps: int) -> int:
    """Smallest frame count whose duration is a whole number of 16 kHz samples (25 fps: 1, 30: 3)."""
    return fps // math.gcd(SAMPLE_RATE, fps)


def _speak(plan: ClipPlan, config: WorldConfig, rng: np.random.Generator) -> Utterance:
    """Speech for one clip: the script grows sentence by sentence until each emotion segment
    reaches its planned end time (whole sentences only; the clip is cut at max later)."""
    target = float(rng.uniform(plan.min_seconds, plan.max_seconds))
    pause = float(rng.uniform(*_PAUSE))
    speech_seed = int(rng.integers(2**31))
    emotions = [plan.primary_emotion]
    if len(config.emotions) > 1 and rng.random() < config.emotion_change_probability:
        count = max(2, int(round(target / _SECONDS_PER_EMOTION)))
        for _ in range(count - 1):
            others = [e for e in config.emotions if e != emotions[-1]]
            emotions.append(others[int(rng.integers(len(others)))])
    # Planned segment ends: equal shares of the target, jittered by up to a quarter share, so
    # change points land anywhere in the clip but never collapse onto each other.
    share = target / len(emotions)
    ends = [share * (k + 1) + (rng.uniform(-0.25, 0.25) * share if k + 1 < len(emotions) else 0.0)
            for k in range(len(emotions))]

    def speak(script: list[tuple[str, str]]) -> Utterance:
        return _synthesize(script, plan, config, pause, speech_seed)

    lines: list[tuple[str, str]] = []
    utt: Utterance | None = None
    spoken_until = 0.0  # where the kept lines end (their last pause included)
    for emotion, end in zip(emotions, ends):
        first_new = len(lines)
        while True:
            # A batch sized for the remaining time at ~2.5 s per sentence; topped up if short.
            batch = make_script(rng, max(1, int(math.ceil((end - spoken_until) / 2.5))), [emotion])
            candidate = lines + batch
            utt = speak(candidate)
            seg_ends = [e for _, _, e in utt.emotion_segments]
            reached = [k for k in range(first_new, len(candidate)) if seg_ends[k] >= end]
            keep = reached[0] + 1 if reached else len(candidate)
            # Stop one sentence short when that ends nearer the planned time (clip lengths then
            # centre on the target instead of always overshooting it), keeping at least one
            # sentence of this emotion and, at the clip's end, the minimum length.
            if reached and keep - 1 > first_new and end - seg_ends[keep - 2] < seg_ends[keep - 1] - end \
                    and (end != ends[-1] or seg_ends[keep - 2] >= plan.min_seconds):
                keep -= 1
            lines, spoken_until = candidate[:keep], seg_ends[keep - 1]
            if reached:
                break
    if utt is None or len(utt.emotion_segments) != len(lines):
        # Line k of a script depends only on (text, emotion, voice, seed, k), so the prefix
        # spoken alone is exactly the prefix of the longer candidate.
        utt = speak(lines)
    return utt


def _synthesize(lines: list[tuple[str, str]], plan: ClipPlan, config: WorldConfig, pause: float,
                seed: int) -> Utterance:
    """Speak ``lines`` = [(text, face emotion)] in the plan's voice; with a prosody shift, each line
    with the shifted emotion's prosody, its timeline still labelled with the face's emotion."""
    if not plan.prosody_shift:
        return synthesize_script(lines, voice=plan.voice, pause=pause, seed=seed)
    voiced = [(text, order_shifted(config, emotion, plan.prosody_shift)) for text, emotion in lines]
    utt = synthesize_script(voiced, voice=plan.voice, pause=pause, seed=seed)
    # one timeline entry per line (synthesize_script), relabelled with the face's emotion
    segments = [(face, start, end) for (_, face), (_, start, end) in zip(lines, utt.emotion_segments)]
    spans: dict[str, float] = {}
    for label, start, end in segments:
        spans[label] = spans.get(label, 0.0) + end - start
    return dataclasses.replace(utt, emotion_segments=segments, emotion=max(spans, key=spans.get))


def _frame_count(duration: float, plan: ClipPlan, fps: int) -> int:
    step = _frame_step(fps)
    hi = max(step, int(math.floor(plan.max_seconds * fps / step + 1e-9)) * step)
    lo = min(hi, int(math.ceil(plan.min_seconds * fps / step - 1e-9)) * step)
    want = int(math.ceil(duration * fps / step - 1e-9)) * step
    return int(min(max(want, lo), hi))


def _segments(utt: Utterance, duration: float) -> list[dict[str, Any]]:
    """The utterance's emotion timeline cut to the clip, consecutive equal labels merged."""
    out: list[dict[str, Any]] = []
    for label, start, end in utt.emotion_segments:
        if start >= duration:
            break
        end = min(end, duration)
        if out and out[-1]["emotion"] == label:
            out[-1]["end"] = end
        else:
            out.append({"emotion": label, "start": start, "end": end})
    out[-1]["end"] = duration  # frames past the speech keep the last label (Utterance.emotion_track)
    return [{"emotion": s["emotion"], "start": round(float(s["start"]), 6), "end": round(float(s["end"]), 6)}
            for s in out]


def _intensity_track(segments: list[dict[str, Any]], fps: int, frames: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Per-frame expression intensity: a level per segment, faded to 0 and back over
    ``_RAMP_SECONDS`` around every change (raised cosine, so the face moves smoothly)."""
    t = (np.arange(frames) + 0.5) / fps
    levels = rng.uniform(*_INTENSITY, size=len(segments))
    out = np.zeros(frames)
    half = _RAMP_SECONDS / 2
    for k, seg in enumerate(segments):
        inside = (t >= seg["start"]) & (t < seg["end"]) if k + 1 < len(segments) else t >= seg["start"]
        gain = np.ones(frames)
        if k > 0:      # fade in after the change at seg.start
            gain = np.minimum(gain, 0.5 - 0.5 * np.cos(np.pi * np.clip((t - seg["start"]) / half, 0, 1)))
        if k + 1 < len(segments):  # fade out before the change at seg.end
            gain = np.minimum(gain, 0.5 - 0.5 * np.cos(np.pi * np.clip((seg["end"] - t) / half, 0, 1)))
        out[inside] = levels[k] * gain[inside]
    return out


def _polygon_area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _photo_mouth_inner(state, size: int) -> np.ndarray:
    """The inner-mouth polygon render_photo fills, in output pixels (empty when closed).

    real_photo has no public landmark for it, so this repeats its construction with its own
    helpers: the gap between the lip split line (above) and the same line moved by the jaw."""
    from . import real_photo as rp
    s = size / rp.CROP_SIZE
    warp = rp._Warp(state)
    if warp.gap * s <= 0.3:  # render_photo draws no opening below this
        return np.zeros((0, 2))
    fwd, _ = rp._pose(state, size)
    xs = np.linspace(rp.LANDMARKS["mouth_left"][0], rp.LANDMARKS["mouth_right"][0], 25)
    top = np.stack([xs, rp._split_y(xs)], axis=1)
    above = np.zeros(len(xs), bool)
    return np.vstack([rp._to_out(top, warp, fwd, s, above), rp._to_out(top, warp, fwd, s, ~above)[::-1]])


class ClipRenderer:
    """Frame + inner-mouth area for one clip's face (cartoon identity or the real photo).

    ``ClipRenderer(plan, size)(state)`` gives the uint8 (size, size, 3) frame of ``state`` (a
    :class:`.face.FaceState`) and its inner-mouth area, the value the truth stores as
    ``mouth_area``. The area is normalised by the squared inter-ocular distance of the frontal rest
    face (the usual face-size normaliser of landmark work), so it is comparable across sizes and
    faces. Public (``api``): the world measurer renders extra frames with it."""

    def __init__(self, plan: ClipPlan, size: int):
        from .face import FaceState, face_landmarks, render
        self.size = size
        if plan.kind == "photo":
            from .real_photo import photo_landmarks, render_photo
            rest = photo_landmarks(FaceState(), size)
            self._render = lambda st: render_photo(st, size)
            self._inner = lambda st: _photo_mouth_inner(st, size)
            left, right = rest["left_eye"], rest["right_eye"]
        else:
            from .identity import FaceIdentity
            ident = FaceIdentity.from_seed(plan.identity_seed)
            rest = face_landmarks(ident, FaceState(), size)
            self._render = lambda st: render(ident, st, size)
            self._inner = lambda st: face_landmarks(ident, st, size)["mouth_inner"]
            left, right = rest["left_eye_centre"], rest["right_eye_centre"]
        self.scale = float(np.hypot(*(np.asarray(right) - np.asarray(left)))) ** 2

    def __call__(self, state) -> tuple[np.ndarray, float]:
        return self._render(state), _polygon_area(self._inner(state)) / self.scale


def order_shifted(config: WorldConfig, emotion: str, shift: int) -> str:
    """The emotion ``shift`` places after ``emotion`` in the world's order (a mismatched voice's)."""
    order = config.emotions
    return order[(order.index(emotion) + shift) % len(order)]


def make_clip(plan: ClipPlan, config: WorldConfig, root: Path) -> dict[str, Any]:
    """Generate one clip (video, truth, record) under ``root``; returns its record."""
    from .face import MAX_POSE, FaceState
    from .motion import blink_track, head_pose_track
    from .visemes import energy_track, mouth_track

    rng = np.random.default_rng(_seq(config, _KIND_TAG[plan.kind], max(plan.identity, 0), plan.index))
    fps, size = config.fps, config.size
    utt = _speak(plan, config, rng)
    frames = _frame_count(utt.duration, plan, fps)
    duration = frames / fps
    n_samples = frames * SAMPLE_RATE // fps  # exact: frames is a multiple of _frame_step(fps)
    audio = np.zeros(n_samples, np.float32)
    audio[:min(n_samples, len(utt.samples))] = utt.samples[:n_samples]

    mouth = mouth_track(utt.phonemes, fps, frames)
    energy = energy_track(audio, SAMPLE_RATE, fps, frames)
    segments = _segments(utt, duration)
    emotion = utt.emotion_track(fps, frames).astype(np.int8)
    intensity = _intensity_track(segments, fps, frames, rng).astype(np.float32)
    amplitude = float(rng.uniform(*_POSE_AMPLITUDE))
    pose = np.clip(head_pose_track(rng, frames, fps, amplitude), -MAX_POSE, MAX_POSE).astype(np.float32)
    blink = blink_track(rng, frames, fps, float(rng.uniform(*_BLINK_RATE))).astype(np.float32)
    gaze = np.clip(-_GAZE_COMPENSATION * pose[:, :2], -1.0, 1.0).astype(np.float32)

    # Renderer inputs are the float32 values stored in the truth, so truth == what was drawn.
    renderer = ClipRenderer(plan, size)
    video = np.empty((frames, size, size, 3), np.uint8)
    area = np.empty(frames, np.float32)
    for i in range(frames):
        state = FaceState(mouth_open=float(mouth.opening[i]), mouth_width=float(mouth.width[i]),
                          mouth_round=float(mouth.roundness[i]), emotion=PAPER_LABELS[int(emotion[i])],
                          intensity=float(intensity[i]), blink=float(blink[i]), yaw=float(pose[i, 0]),
                          pitch=float(pose[i, 1]), roll=float(pose[i, 2]), gaze_x=float(gaze[i, 0]),
                          gaze_y=float(gaze[i, 1]))
        video[i], area[i] = renderer(state)

    spoken = [(w, s, e) for w, s, e in utt.words if s < duration]
    text = utt.text if len(spoken) == len(utt.words) else " ".join(w for w, _, _ in spoken)
    phonemes = [p for p in utt.phonemes if p.start < duration]
    counts = np.bincount(emotion.astype(np.int64), minlength=len(PAPER_LABELS))
    main_emotion = PAPER_LABELS[int(np.argmax(counts))]  # spec E5: a clip's label = most frequent frame label

    video_path = root / "data" / "video" / f"{plan.clip_id}.mp4"
    truth_path = root / "data" / "truth" / f"{plan.clip_id}.npz"
    write_video(video_path, video, fps, audio)
    write_npz(truth_path, {
        # per frame
        "mouth_open": mouth.opening, "mouth_width": mouth.width, "mouth_round": mouth.roundness,
        "viseme": mouth.viseme.astype(np.int16), "mouth_area": area,
        "emotion": emotion, "intensity": intensity,
        "yaw": pose[:, 0], "pitch": pose[:, 1], "roll": pose[:, 2], "blink": blink,
        "gaze_x": gaze[:, 0], "gaze_y": gaze[:, 1], "energy": energy,
        # per clip
        "clip_id": np.array(plan.clip_id), "identity": np.array(plan.identity, np.int64),
        "speaker": np.array(plan.speaker), "voice": np.array(plan.voice), "text": np.array(text),
        "fps": np.array(float(fps)), "size": np.array(size, np.int64), "tier": np.array(
            "photo" if plan.kind == "photo" else "cartoon"),
        "sample_rate": np.array(SAMPLE_RATE, np.int64), "emotion_labels": np.array(PAPER_LABELS),
        # timings (seconds), for phoneme-level lip-sync metrics
        "phoneme_symbol": np.array([p.symbol for p in phonemes], dtype=str),
        "phoneme_start": np.array([p.start for p in phonemes], np.float64),
        "phoneme_end": np.array([p.end for p in phonemes], np.float64),
        "word_text": np.array([w for w, _, _ in spoken], dtype=str),
        "word_start": np.array([s for _, s, _ in spoken], np.float64),
        "word_end": np.array([e for _, _, e in spoken], np.float64),
    })
    record = {
        "video": f"data/video/{plan.clip_id}.mp4", "clip_id": plan.clip_id, "speaker": plan.speaker,
        "emotion": main_emotion, "emotions": segments, "text": text, "voice": plan.voice,
        "split": plan.split, "truth": f"data/truth/{plan.clip_id}.npz", "duration": duration,
        "frames": frames, "fps": fps, "size": size, "tier": "photo" if plan.kind == "photo" else "cartoon",
        "identity": plan.identity,
        **({"voice_emotions": [order_shifted(config, s["emotion"], plan.prosody_shift) for s in segments]}
           if plan.prosody_shift else {}),
        "files": {"video": video_path.stat().st_size, "truth": truth_path.stat().st_size},
    }
    # The record is the completion marker: written last, so its presence means both files are in.
    write_text(root / "data" / "records" / f"{plan.clip_id}.json", json.dumps(record, sort_keys=True, indent=1))
    return record


# ----------------------------------------------------------------------------------- file helpers


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (memo_zoo.atomic: temp file in the same folder, then rename)."""
    write_text_atomically(path, text)


def _write_zip(target: str, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` made byte-reproducible, written atomically.

    numpy stamps each member with the current time, so two identical generations would differ in
    bytes; here every member gets a fixed timestamp. ``np.load`` reads the result as usual."""
    write_atomically(path, lambda temp: _write_zip(temp, arrays))


def _read_record(root: Path, clip_id: str) -> dict[str, Any] | None:
    """The clip's record if the clip is complete (record present, both files of the recorded sizes)."""
    path = root / "data" / "records" / f"{clip_id}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        sizes = record["files"]
        if ((root / record["video"]).stat().st_size != sizes["video"]
                or (root / record["truth"]).stat().st_size != sizes["truth"]):
            return None
        return record
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_stale_temps(root: Path) -> None:
    """Temp files of a killed run (``.<name>.*``, as memo_zoo.atomic names them)."""
    for folder in ("video", "truth", "records"):
        for temp in (root / "data" / folder).glob(".*"):
            if temp.is_file():
                temp.unlink(missing_ok=True)
    for temp in root.glob(".metadata.jsonl.*"):
        temp.unlink(missing_ok=True)


def _check_world_json(root: Path, config: WorldConfig) -> None:
    wanted = generation_fields(config)
    path = root / "world.json"
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise MemoZooError(f"{path} cannot be read ({error}); remove it or choose another root") from None
        if existing.get("config") != wanted:
            differ = sorted(k for k in set(wanted) | set(existing.get("config", {}))
                            if existing.get("config", {}).get(k) != wanted.get(k))
            raise MemoZooError(f"{root} holds a talking_world generated with another config (fields differ: "
                               f"{', '.join(differ)}); use another root, or root: null for a per-config cache folder")
        return
    root.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({"generator": "memo_zoo talking_world", "config": wanted}, sort_keys=True, indent=1))


# ----------------------------------------------------------------------------------- driver


def _init_worker() -> None:
    # One process per core: OpenCV's own thread pool would only oversubscribe the cores.
    import cv2
    cv2.setNumThreads(1)


def _worker(plan: ClipPlan, config_json: str, root: str) -> dict[str, Any]:
    return make_clip(plan, WorldConfig.model_validate_json(config_json), Path(root))


def _cost(plan: ClipPlan) -> float:
    return plan.max_seconds


def _run_inline(todo: list[ClipPlan], config: WorldConfig, root: Path) -> Iterator[dict[str, Any]]:
    import cv2
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # same single-threaded OpenCV as in the workers; restored afterwards
    try:
        for plan in todo:
            yield make_clip(plan, config, root)
    finally:
        cv2.setNumThreads(threads)


def _run_pool(todo: list[ClipPlan], config: WorldConfig, root: Path) -> Iterator[dict[str, Any]]:
    # Processes, not threads: espeak synthesis is serialised under a lock within a process.
    # "fork" where the platform has it: "spawn" / "forkserver" re-import the caller's main module,
    # which breaks generate() called from a plain script without a __main__ guard (and costs a
    # second of imports per worker). The workers use only numpy, OpenCV (single-threaded, set in
    # the initializer), espeak and PyAV, none of which the parent's threads can leave locked.
    # Longest clips first so they do not straggle at the end; then by identity, so a worker
    # reuses its per-identity render caches.
    order = sorted(todo, key=lambda p: (-_cost(p), p.identity, p.clip_id))
    config_json = config.model_dump_json()
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=min(config.workers, len(order)), mp_context=get_context(method),
                             initializer=_init_worker) as pool:
        futures = [pool.submit(_worker, plan, config_json, str(root)) for plan in order]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def generate(config: WorldConfig, progress: bool = True) -> Path:
    """Generate (or complete) ``config``'s world and return its root. Idempotent: complete clips
    are kept as they are; missing or partial ones are made; ``metadata.jsonl`` is rebuilt."""
    config = WorldConfig.model_validate(config.model_dump(include=set(WorldConfig.model_fields)))
    root = world_root(config)
    _check_world_json(root, config)
    if config.photo_fraction > 0:
        from .real_photo import portrait
        portrait()  # fail now, with the install hint, rather than inside a worker
    _remove_stale_temps(root)
    plans = plan_clips(config)
    records: dict[str, dict[str, Any]] = {}
    todo: list[ClipPlan] = []
    for plan in plans:
        record = _read_record(root, plan.clip_id)
        if record is None:
            todo.append(plan)
        else:
            records[plan.clip_id] = record
    if todo:
        runner = _run_inline if config.workers == 1 or len(todo) == 1 else _run_pool
        results = runner(todo, config, root)
        if progress:
            from memo_zoo.progress import progress as bar
            results = bar(results, desc=f"talking_world {root.name}", total=len(todo), unit="clip")
        for record in results:
            records[record["clip_id"]] = record
    lines = [json.dumps({k: v for k, v in records[p.clip_id].items() if k != "files"}, sort_keys=True)
             for p in plans]
    text = "".join(line + "\n" for line in lines)
    metadata = root / "metadata.jsonl"
    if not metadata.is_file() or metadata.read_text(encoding="utf-8") != text:
        write_text(metadata, text)
    return root


def summary(root: Path) -> dict[str, Any]:
    """Clip count, total seconds and frames of a generated world (from its metadata)."""
    entries = [json.loads(line) for line in (Path(root) / "metadata.jsonl").read_text().splitlines() if line]
    return {"clips": len(entries), "seconds": sum(e["duration"] for e in entries),
            "frames": sum(e["frames"] for e in entries),
            "emotions": dict(Counter(e["emotion"] for e in entries)),
            "splits": dict(Counter(e["split"] for e in entries))}


__all__ = ["ClipPlan", "FORMAT_VERSION", "WorldConfig", "generate", "generation_fields", "make_clip",
           "plan_clips", "summary", "world_hash", "world_root", "write_npz"]
