"""Phonemes -> visemes -> per-frame mouth parameters, for talking_world's lip-sync ground truth.

talking_world (issue 4) drives its rendered mouth from the exact phoneme timings that
:mod:`.speech` gets out of eSpeak NG. This module

- maps espeak's English phoneme mnemonics (as its phoneme events report them, e.g. ``"p"``,
  ``"'aI"``, ``"@2"``, ``"_:"``) to a small set of 13 :data:`VISEMES`, each a target mouth shape
  (opening, width, roundness, all in [0, 1]) plus a dominance that says how strongly the sound
  imposes its shape on its neighbours;
- turns a phoneme list into per-video-frame mouth parameters with co-articulation
  (:func:`mouth_track`): each segment's influence decays exponentially outside its span, and
  the mouth is the dominance-weighted mean of the targets (a Cohen-Massaro-style model). The
  mouth therefore anticipates the next sound and lags behind the last one, moves continuously,
  and the high-dominance lip closures (p, b, m; f, v) still reach their targets;
- gives the per-frame audio energy (:func:`energy_track`), the simplest audio feature to check
  lip-sync against.

Frame ``i`` is the video frame shown during ``[i / fps, (i + 1) / fps)``; the mouth is sampled at
its midpoint and the energy averaged over the whole interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .speech import PhonemeEvent


@dataclass(frozen=True)
class Viseme:
    name: str
    # Same scales as face.FaceState's mouth_open / mouth_width / mouth_round, so a track can be
    # fed to the renderer as is.
    opening: float  # jaw/lip opening: 0 = lips shut, 1 = wide open
    width: float  # mouth-corner spread: 0 = pursed, 0.5 = at rest, 1 = spread (as for /i/)
    roundness: float  # lip rounding / protrusion: 0 = flat, 1 = fully rounded (as for /u/)
    # Relative pull on (opening, width, roundness) around it (see module docstring). Per
    # parameter because a sound constrains only some: p/b/m fix the opening (closed) but leave
    # the lip shape to the neighbours, hence the rounding of "p" in "pool".
    dominance: tuple[float, float, float]
    spread: float  # how far that pull reaches outside the span, as a multiple of `smoothing`
    description: str


VISEMES: tuple[Viseme, ...] = (
    Viseme("sil", 0.00, 0.50, 0.00, (0.6, 0.6, 0.6), 1.0, "silence: lips closed, at rest"),
    # Lip contact has to be reached whatever the neighbours are (by far the highest dominance on
    # the opening), but lips part quickly, so that pull stays short-ranged: "map" opens wide.
    Viseme("PP", 0.00, 0.48, 0.15, (15.0, 0.8, 0.4), 0.3, "bilabial closure: p b m"),
    Viseme("FF", 0.10, 0.52, 0.05, (5.0, 1.0, 0.6), 0.4, "labiodental: f v, lip to upper teeth"),
    Viseme("TH", 0.22, 0.55, 0.05, (2.0, 1.0, 0.8), 1.0, "dental: th (T D), tongue at the teeth"),
    Viseme("DD", 0.25, 0.55, 0.10, (1.0, 0.6, 0.5), 1.0, "alveolar: t d n l s z, lips follow"),
    Viseme("CH", 0.20, 0.38, 0.70, (1.5, 2.5, 2.5), 1.0, "postalveolar: sh zh ch j, protruded"),
    # Velars and h are made at the back of the mouth: the lips take the neighbours' shape.
    Viseme("KK", 0.32, 0.52, 0.10, (0.6, 0.5, 0.4), 1.0, "velar / glottal: k g ng h, glottal stop"),
    Viseme("RR", 0.25, 0.40, 0.60, (1.2, 1.5, 1.5), 1.0, "rhotic: r, r-coloured schwa"),
    Viseme("IH", 0.28, 0.85, 0.00, (1.5, 2.0, 1.5), 1.0, "close front, spread: ee, i, y"),
    Viseme("EH", 0.50, 0.65, 0.05, (1.2, 1.2, 1.2), 1.0, "mid unrounded vowels: e, schwa, uh"),
    Viseme("AA", 0.90, 0.60, 0.05, (1.5, 1.2, 1.2), 1.0, "open vowels: a, ah"),
    Viseme("OH", 0.60, 0.38, 0.75, (1.5, 1.8, 2.0), 1.0, "open / mid rounded vowels: aw, o"),
    # Lip rounding is anticipated early (it starts during preceding consonants): long reach.
    Viseme("OU", 0.22, 0.25, 0.95, (1.5, 2.2, 2.5), 1.5, "close rounded: oo, w"),
)
VISEME_NAMES: tuple[str, ...] = tuple(v.name for v in VISEMES)
_ID = {name: i for i, name in enumerate(VISEME_NAMES)}
SILENCE = _ID["sil"]
BILABIAL = _ID["PP"]

# espeak English mnemonics (en-us and en / en-gb voices), stress marks removed. Diphthongs and
# r-/l-coloured vowels move through two or three shapes; their span is split evenly.
_TABLE: dict[str, tuple[str, ...]] = {
    # consonants
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "m-": ("PP",),
    "f": ("FF",), "v": ("FF",),
    "T": ("TH",), "D": ("TH",),
    "t": ("DD",), "d": ("DD",), "n": ("DD",), "l": ("DD",), "s": ("DD",), "z": ("DD",),
    "t#": ("DD",), "t2": ("DD",), "d#": ("DD",), "n-": ("DD",), "l-": ("DD",), "L": ("DD",),
    "S": ("CH",), "Z": ("CH",), "tS": ("CH",), "dZ": ("CH",),
    "k": ("KK",), "g": ("KK",), "N": ("KK",), "h": ("KK",), "x": ("KK",), "?": ("KK",),
    "r": ("RR",), "r-": ("RR",), "3": ("RR",),
    "w": ("OU",), "W": ("OU",),
    "j": ("IH",), ";": ("IH",),  # ";" is espeak's linking glide between two vowels
    # monophthongs
    "i:": ("IH",), "i": ("IH",), "I": ("IH",), "I2": ("IH",), "I#": ("IH",),
    "E": ("EH",), "e": ("EH",), "@": ("EH",), "@2": ("EH",), "@-": ("EH",), "V": ("EH",),
    "a#": ("EH",), "3:": ("EH",), "e@": ("EH",),
    "a": ("AA",), "aa": ("AA",), "A:": ("AA",), "A@": ("AA",), "A": ("AA",),
    "0": ("OH",), "O:": ("OH",), "O": ("OH",), "O2": ("OH",), "O@": ("OH",), "o@": ("OH",),
    "u:": ("OU",), "U": ("OU",),
    # diphthongs and coloured vowels
    "aI": ("AA", "IH"), "aU": ("AA", "OU"), "eI": ("EH", "IH"), "oU": ("OH", "OU"),
    "OI": ("OH", "IH"), "i@": ("IH", "EH"), "i@3": ("IH", "RR"), "U@": ("OU", "EH"),
    "aI@": ("AA", "IH", "EH"), "aI3": ("AA", "IH", "RR"), "aU@": ("AA", "OU", "EH"),
    "@L": ("EH", "DD"),
}
PHONEME_TO_VISEMES: dict[str, tuple[int, ...]] = {
    sym: tuple(_ID[v] for v in names) for sym, names in _TABLE.items()}

_VOWEL_START = set("aeiouAEIOUV@03")
_STRESS = re.compile(r"^[',%=]+")
_SUFFIX = re.compile(r"[0-9#\-;:]+$")


def visemes_of(symbol: str) -> tuple[int, ...]:
    """Viseme ids for one espeak mnemonic (one id, or two or three for gliding vowels).

    Lookup rule: drop leading stress marks (``'`` primary, ``,`` secondary); look the rest up;
    failing that, drop a trailing variant suffix (digits, ``#``, ``-``, ``;``, ``:``) and look up
    again. Anything still unknown: a pause (leading ``_``) -> silence; a symbol that starts like
    a vowel (``a e i o u A E I O U V @ 0 3``) -> the mid vowel EH, the least committal open
    shape; any other consonant -> DD, whose low dominance lets the neighbouring vowels decide.
    """
    core = _STRESS.sub("", symbol)
    if not core or core.startswith("_"):
        return (SILENCE,)
    if core in PHONEME_TO_VISEMES:
        return PHONEME_TO_VISEMES[core]
    stripped = _SUFFIX.sub("", core)
    if stripped in PHONEME_TO_VISEMES:
        return PHONEME_TO_VISEMES[stripped]
    return (_ID["EH"],) if core[0] in _VOWEL_START else (_ID["DD"],)


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame mouth parameters (float32, in [0, 1]) and the viseme id being articulated."""

    opening: np.ndarray
    width: np.ndarray
    roundness: np.ndarray
    viseme: np.ndarray  # int64 index into VISEMES

    def __len__(self) -> int:
        return len(self.viseme)


_TARGETS = np.array([[v.opening, v.width, v.roundness] for v in VISEMES], dtype=np.float64)
_DOMINANCE = np.array([v.dominance for v in VISEMES], dtype=np.float64)  # (visemes, 3)
_SPREAD = np.array([v.spread for v in VISEMES], dtype=np.float64)


def _segments(phonemes: Sequence[PhonemeEvent], until: float) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """(starts, ends, viseme ids) tiling [0, until]: gliding vowels split evenly, gaps and the
    time before / after the phonemes filled with silence."""
    starts, ends, ids = [], [], []
    cursor = 0.0
    for ph in sorted(phonemes, key=lambda p: p.start):
        if ph.end <= ph.start:
            continue
        if ph.start > cursor:
            starts.append(cursor), ends.append(ph.start), ids.append(SILENCE)
        parts = visemes_of(ph.symbol)
        edges = np.linspace(max(ph.start, cursor), ph.end, len(parts) + 1)
        for j, v in enumerate(parts):
            if edges[j + 1] > edges[j]:
                starts.append(edges[j]), ends.append(edges[j + 1]), ids.append(v)
        cursor = max(cursor, ph.end)
    if cursor < until:
        starts.append(cursor), ends.append(until), ids.append(SILENCE)
    return np.array(starts), np.array(ends), np.array(ids, dtype=np.int64)


def mouth_track(phonemes: Sequence[PhonemeEvent], fps: float, num_frames: int,
                smoothing: float = 0.03) -> MouthTrack:
    """Mouth parameters for frames ``0 .. num_frames - 1`` at ``fps``, sampled at the frame
    midpoints ``(i + 0.5) / fps``.

    ``smoothing`` is the co-articulation time constant in seconds: a segment's dominance is
    full inside its span and decays as ``exp(-distance / (smoothing * spread))`` outside it
    (``spread`` per viseme: short for lip contacts, long for rounding). 0 gives the raw,
    piecewise-constant targets. With the default 30 ms, a p/b/m of 30 ms or more keeps the
    opening at or below about 0.1 throughout, even between wide-open vowels (0.9), while the lip
    shape during it follows the neighbours (rounded in "oops"); vowel-to-vowel moves are spread
    over roughly 60-100 ms.
    """
    if fps <= 0 or num_frames < 0 or smoothing < 0:
        raise ValueError("mouth_track needs fps > 0, num_frames >= 0, smoothing >= 0")
    times = (np.arange(num_frames) + 0.5) / fps
    until = max(times[-1] if num_frames else 0.0, max((p.end for p in phonemes), default=0.0))
    starts, ends, ids = _segments(phonemes, until + 1e-9)

    num = np.zeros((num_frames, 3))
    den = np.zeros((num_frames, 3))
    for s, e, v in zip(starts, ends, ids):
        tau = smoothing * _SPREAD[v]
        # Beyond ~12 time constants the weight is < 1e-5 of the dominance: skip those frames.
        lo, hi = np.searchsorted(times, [s - 12 * tau, e + 12 * tau], side="left")
        if hi <= lo:
            continue
        t = times[lo:hi]
        distance = np.maximum(0.0, np.maximum(s - t, t - e))
        if tau > 0:
            falloff = np.exp(-distance / tau)
        else:
            falloff = (distance == 0.0).astype(np.float64)
        weight = falloff[:, None] * _DOMINANCE[v]  # (frames, 3 parameters)
        num[lo:hi] += weight * _TARGETS[v]
        den[lo:hi] += weight
    values = num / np.maximum(den, 1e-12)

    # The articulated viseme: the segment whose span holds the frame midpoint.
    # (_segments always returns at least one segment: it tiles [0, until] with until > 0.)
    viseme = ids[np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(ids) - 1)]
    values = np.clip(values, 0.0, 1.0).astype(np.float32)
    return MouthTrack(opening=values[:, 0].copy(), width=values[:, 1].copy(),
                      roundness=values[:, 2].copy(), viseme=viseme.astype(np.int64))


def energy_track(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS of the mono ``samples`` over each frame's interval ``[i / fps, (i + 1) / fps)``
    (float32, same units as the samples; 0 for frames past the end of the audio)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    # Prefix sums make every window O(1), whatever the clip length.
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    edges = np.round(np.arange(num_frames + 1) * sample_rate / fps).astype(np.int64)
    edges = np.minimum(edges, len(x))
    count = np.diff(edges)
    power = np.diff(csum[edges]) / np.maximum(count, 1)
    return np.sqrt(np.maximum(power, 0.0)).astype(np.float32)
