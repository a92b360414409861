"""Face renderer of the talking_world synthetic dataset (issue 4): identity + per-frame state -> RGB.

MEMO's claims (spec §0: identity kept over thousands of frames, lips in sync, expression following
the audio's emotion, spec E4) are tested on clips whose ground truth is exact. This module draws
one frame from a :class:`~.identity.FaceIdentity` and a :class:`FaceState` (mouth shape, emotion,
blink, head pose, gaze).

Model (a "2.5D" cartoon head):

- Face coordinates: x right, y down, z towards the viewer, in units of the head's half-width,
  origin at the head centre (eye level). The face front is the ellipsoid
  x^2 + (y/B)^2 + (z/D)^2 = 1 with B the identity's ``face_ratio`` and depth D = 0.8.
- Every facial feature (eyes, brows, nose, lips, hairline, glasses, beard edge) is laid out as a 2D
  contour in the frontal view, lifted onto that ellipsoid (plus a per-feature protrusion: the nose
  tip and glasses stand out, so they show parallax), rotated by pitch then yaw, and projected
  orthographically. The silhouette of that ellipsoid under yaw/pitch is the frontal one squeezed
  a little, so the outline (jaw, crown, back hair) is a 2D shape that is squeezed and rolled while
  the features slide and foreshorten inside it; edges that end on the outline (hairline, beard,
  hat) blend between the two. Roll turns everything about a pivot in the neck.
- Expression (spec E4's 8 labels) is a small set of facial action parameters (brow raise, squeeze,
  eye widening, lid raise, mouth-corner lift, lip stretch/press, jaw drop, upper-lip raise, nose
  wrinkle, cheek raise), one table row per emotion scaled by ``intensity``; see
  :data:`EXPRESSIONS`.
- Speech drives ``mouth_open`` / ``mouth_width`` / ``mouth_round``; the expression's jaw drop and
  lip actions combine with them (so an angry speaker still articulates).

Drawing: OpenCV polygons with ``LINE_AA`` and sub-pixel (fixed-point) coordinates on a canvas 2-4x
the output size, then an ``INTER_AREA`` downsample, so edges stay smooth at 32 px. The static layer
(backdrop, shoulders, neck) is cached per identity and canvas size, the per-identity geometry in
frontal coordinates per identity; a frame collects its shapes, projects them with one matrix
product and draws them (see ``benchmarks/talking_world_render.py`` for the cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import cv2
import numpy as np

from memo_zoo.emotion import PAPER_LABELS

from .identity import FaceIdentity

MIN_SIZE, MAX_SIZE = 16, 1024
# Beyond ~35 degrees the "features slide on an ellipsoid inside a 2D outline" approximation shows
# (features would need hiding behind the nose/cheek), so poses are limited to this.
MAX_POSE = 0.6

_SHIFT = 4                      # fixed-point bits for cv2 sub-pixel coordinates
_FIX = float(1 << _SHIFT)
_LINE = cv2.LINE_AA

# Layout constants, in face units (head half-width = 1); vertical ones are fractions of B.
_HEAD_SCALE = 0.265             # head half-width / canvas size
_CENTRE_Y = 0.45                # head centre height / canvas size
_NOSE_BASE = 0.34
_MOUTH_Y = 0.58
_PIVOT = 0.35                   # roll pivot below the chin (neck), in units


# --------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class FaceState:
    """One frame's facial state; every field has a documented range, checked on construction.

    mouth_open:  0 closed .. 1 jaw fully dropped.
    mouth_width: 0 narrow/pursed .. 0.5 rest .. 1 spread (as for /i/).
    mouth_round: 0 flat .. 1 fully rounded and protruded (as for /u/, /o/).
    emotion:     one of the paper's 8 labels (spec E4).
    intensity:   0 (looks neutral) .. 1 (full expression).
    blink:       0 eyes open .. 1 lids closed.
    yaw, pitch, roll: head pose in radians, each in [-MAX_POSE, MAX_POSE]. yaw > 0 turns the nose
                 towards image right, pitch > 0 tilts it down, roll > 0 tilts the head clockwise.
    gaze_x, gaze_y: iris offset in [-1, 1] (right / down positive), relative to the head.
    """

    mouth_open: float = 0.0
    mouth_width: float = 0.5
    mouth_round: float = 0.0
    emotion: str = "neutral"
    intensity: float = 1.0
    blink: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0

    def __post_init__(self) -> None:
        if self.emotion not in PAPER_LABELS:
            raise ValueError(f"unknown emotion {self.emotion!r}; expected one of {', '.join(PAPER_LABELS)}")
        for f in fields(self):
            if f.name == "emotion":
                continue
            v = getattr(self, f.name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"FaceState.{f.name} must be a finite number, got {v!r}")
            lo, hi = _RANGES[f.name]
            if not lo <= v <= hi:
                raise ValueError(f"FaceState.{f.name}={v} outside [{lo}, {hi}]")


_RANGES: dict[str, tuple[float, float]] = {
    "mouth_open": (0.0, 1.0), "mouth_width": (0.0, 1.0), "mouth_round": (0.0, 1.0),
    "intensity": (0.0, 1.0), "blink": (0.0, 1.0),
    "yaw": (-MAX_POSE, MAX_POSE), "pitch": (-MAX_POSE, MAX_POSE), "roll": (-MAX_POSE, MAX_POSE),
    "gaze_x": (-1.0, 1.0), "gaze_y": (-1.0, 1.0),
}


# ----------------------------------------------------------------------------------- expression


@dataclass(frozen=True)
class Expression:
    """Facial action parameters of an expression at full intensity (FACS-like, simplified).

    Brow raises are in "brow units" (+ up); ``corner`` lifts the mouth corners (+ smile, - frown);
    the rest are 0..1 amounts. ``brow_left`` and ``corner_right`` are one-sided extras (image
    left/right), used only by ``others``.
    """

    brow_inner: float = 0.0     # inner brow ends up (+) / down (-)        AU1 / AU4
    brow_outer: float = 0.0     # outer brow ends up (+) / down (-)        AU2
    brow_squeeze: float = 0.0   # brows pulled together                    AU4
    eye_wide: float = 0.0       # upper lid raised (+) / lowered (-)       AU5 / AU7
    lower_lid: float = 0.0      # lower lid raised (cheek push, tension)   AU6 / AU7
    droop: float = 0.0          # outer upper lid lowered (sad eyes)
    corner: float = 0.0         # mouth corners up (+) / down (-)          AU12 / AU15
    stretch: float = 0.0        # lips stretched sideways, thinned         AU20
    press: float = 0.0          # lips pressed, thinned, less opening      AU24
    jaw: float = 0.0            # jaw drop added to the speech opening     AU26
    round: float = 0.0          # lips rounded                             AU18
    upper_lip: float = 0.0      # upper lip raised, teeth shown            AU10
    nose_wrinkle: float = 0.0   # nose wrinkled, nostrils up               AU9
    cheek: float = 0.0          # cheeks raised                            AU6
    pout: float = 0.0           # chin raised, lower lip pushed up         AU17
    brow_left: float = 0.0      # extra raise of the image-left brow only
    corner_right: float = 0.0   # extra lift of the image-right mouth corner only


# One row per paper label (spec E4). Semantics follow the prototypes of Ekman's basic emotions.
# "others" is the paper's catch-all class (spec D2: unclear -> others); it is drawn as a mild
# ambiguous mix that is none of the seven: a lopsided half-smile with one brow raised
# (a sceptical / puzzled look), so it is distinguishable yet not a basic emotion.
EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(),
    "happy": Expression(brow_inner=0.15, brow_outer=0.15, eye_wide=-0.2, lower_lid=0.7, corner=1.0,
                        stretch=0.25, jaw=0.14, cheek=1.0),
    "sad": Expression(brow_inner=1.0, brow_outer=-0.45, brow_squeeze=0.45, eye_wide=-0.25, droop=0.8,
                      corner=-1.0, press=0.2, pout=0.8),
    "angry": Expression(brow_inner=-1.0, brow_outer=0.25, brow_squeeze=1.0, eye_wide=0.1, lower_lid=0.45,
                        corner=-0.25, press=1.0, nose_wrinkle=0.25),
    "surprised": Expression(brow_inner=1.0, brow_outer=1.1, eye_wide=0.6, jaw=0.6, round=0.45),
    "fearful": Expression(brow_inner=1.1, brow_outer=0.25, brow_squeeze=0.8, eye_wide=0.55, lower_lid=0.2,
                          corner=-0.35, stretch=0.9, jaw=0.22),
    "disgusted": Expression(brow_inner=-0.55, brow_outer=-0.3, brow_squeeze=0.45, eye_wide=-0.3,
                            lower_lid=0.6, corner=-0.55, upper_lip=1.0, nose_wrinkle=1.0, cheek=0.4),
    "others": Expression(brow_inner=0.1, eye_wide=-0.05, corner=0.1, brow_left=0.75, corner_right=0.7),
}
assert set(EXPRESSIONS) == set(PAPER_LABELS)


def expression_of(state: FaceState) -> Expression:
    """The action parameters of ``state``: its emotion's row scaled by ``intensity``."""
    row = EXPRESSIONS[state.emotion]
    k = float(state.intensity)
    return Expression(**{f.name: getattr(row, f.name) * k for f in fields(Expression)})


# ----------------------------------------------------------------------------------- helpers


def _shade(c, k: float) -> tuple[int, int, int]:
    """A colour scaled in brightness (k < 1 darker), as plain ints for OpenCV."""
    return tuple(int(min(255, max(0, round(v * k)))) for v in c)  # type: ignore[return-value]


def _mix(a, b, w: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))  # type: ignore[return-value]


def _smooth(points, rounds: int = 2, closed: bool = False) -> np.ndarray:
    """Chaikin corner cutting: a few control points -> a smooth polyline (used on static shapes)."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(rounds):
        q = np.roll(p, -1, axis=0) if closed else p[1:]
        a = p if closed else p[:-1]
        cut = np.empty((2 * len(a), p.shape[1]))
        cut[0::2] = 0.75 * a + 0.25 * q
        cut[1::2] = 0.25 * a + 0.75 * q
        p = cut if closed else np.vstack([p[:1], cut, p[-1:]])
    return p


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _rim_weight(xy: np.ndarray) -> np.ndarray:
    """0 at the face centre .. 1 near the sides: how much a point sticks to the silhouette.

    Edges that end on the head outline (hairline, beard, hat rim) are projected as a blend of the
    3D-lifted position (centre) and the silhouette position (sides), so they meet the outline
    under any pose instead of sliding off it.
    """
    return _smoothstep((np.abs(xy[:, 0]) - 0.5) / 0.45)


def _jaw_weight(y: np.ndarray, B: float) -> np.ndarray:
    """How much a point at frontal height y follows the chin down when the mouth opens: 0 above
    the mouth corners, 1 at the chin (the mandible hinges near the ears)."""
    return _smoothstep((y - 0.45 * B) / (0.5 * B))


def _bezier(ctrl: np.ndarray) -> np.ndarray:
    """Quadratic Bezier curve of 3 control points, sampled at 7 points (precomputed basis)."""
    return _BEZ @ ctrl


_U = np.linspace(-1.0, 1.0, 25)          # lip parameter across the mouth
_UI = np.linspace(-1.0, 1.0, 21)         # the opening's parameter (scaled by its width share)
_T_EYE = np.linspace(-1.0, 1.0, 15)      # eyelid parameter across the eye
_T_BROW = np.linspace(0.0, 1.0, 9)       # brow parameter, inner -> outer
_SIDES = np.array([[-1.0], [1.0]])       # image-left, image-right
_ANG = np.linspace(0, 2 * np.pi, 21)[:-1]
_CIRCLE = np.stack([np.cos(_ANG), np.sin(_ANG)], axis=1)
_bt = np.linspace(0.0, 1.0, 7)[:, None]
_BEZ = np.hstack([(1 - _bt) ** 2, 2 * _bt * (1 - _bt), _bt ** 2])
_TONGUE = np.sqrt(1 - np.linspace(-0.9, 0.9, 15) ** 2)
_DEPTH = 0.8                             # face depth (z semi-axis) / half-width


# ------------------------------------------------------------------------------- static layers


def _outline(ident: FaceIdentity) -> np.ndarray:
    """Head silhouette, clockwise from the crown: an ellipse crown over a superellipse jaw."""
    B = ident.face_ratio
    phi = np.linspace(-0.5 * np.pi, 1.5 * np.pi, 73)[:-1]
    c, s = np.cos(phi), np.sin(phi)
    x, y = c.copy(), B * s
    low = s > 0
    p = 2.0 + 2.2 * ident.jaw_square          # 2 = round jaw, larger = squarer
    x[low] = np.sign(c[low]) * np.abs(c[low]) ** (2.0 / p)
    y[low] = B * np.abs(s[low]) ** (2.0 / p)
    # Narrow the lower face towards the chin (more for a pointed chin): jaw and chin vary apart.
    yy = np.clip(y / B, 0.0, 1.0)
    x *= 1.0 - (0.12 + 0.3 * ident.chin_point) * yy ** 2.2
    return np.stack([x, y], axis=1)


def _arc(B: float, a0: float, a1: float, scale: float, n: int = 24, bumps: float = 0.0) -> np.ndarray:
    """Points on the crown ellipse scaled by ``scale`` between angles a0..a1 (angles as in
    :func:`_outline`: -pi/2 crown, 0 right, pi left); ``bumps`` adds curls."""
    a = np.linspace(a0, a1, n)
    r = scale + bumps * (0.5 + 0.5 * np.cos(a * 15.0))
    return np.stack([np.cos(a) * r, np.sin(a) * B * r], axis=1)


def _hair(ident: FaceIdentity):
    """(back hair, cap outer edge, cap hairline, side patches) per style, frontal coordinates."""
    B = ident.face_ratio
    v = 0.05 + 0.09 * ident.hair_volume
    style = ident.hair_style
    back = cap_outer = cap_line = None
    side: list[np.ndarray] = []
    if style == "bald":
        # A tapered crescent of short hair above and behind each ear; the crown is bare.
        for a0, a1 in ((np.pi - 0.3, np.pi + 0.55), (-0.55, 0.3)):
            outer = _arc(B, a0, a1, 1.03, n=12)
            taper = np.sin(np.linspace(0.0, np.pi, 12)) ** 0.7
            inner = outer * (1.0 - 0.09 * taper)[:, None]
            side.append(np.vstack([outer, inner[::-1]]))
        return back, cap_outer, cap_line, tuple(side)
    if style == "short":
        cap_outer = _arc(B, np.pi - 0.22, 2 * np.pi + 0.22, 1.0 + 0.6 * v)
        ctrl = [(0.98, 0.2 * B), (0.9, -0.12 * B), (0.78, -0.42 * B), (0.45, -0.5 * B), (0.1, -0.56 * B),
                (-0.3, -0.55 * B), (-0.75, -0.44 * B), (-0.9, -0.12 * B), (-0.98, 0.2 * B)]
        cap_line = _smooth(ctrl)
    elif style == "fringe":
        cap_outer = _arc(B, np.pi - 0.3, 2 * np.pi + 0.3, 1.0 + v)
        xs = np.linspace(0.86, -0.86, 15)
        ys = -0.3 * B + 0.045 * (np.arange(15) % 2) + 0.05 * (xs / 0.86) ** 2
        ctrl = [(0.99, 0.28 * B), (0.93, 0.0)] + list(zip(xs, ys)) + [(-0.93, 0.0), (-0.99, 0.28 * B)]
        cap_line = np.asarray(ctrl, dtype=np.float64)
    elif style == "curly":
        cap_outer = _arc(B, np.pi - 0.35, 2 * np.pi + 0.35, 1.04 + v, n=40, bumps=0.07)
        xs = np.linspace(0.95, -0.95, 17)
        ys = -0.48 * B + 0.28 * B * np.abs(xs) ** 3 + 0.035 * np.cos(np.arange(17) * np.pi)
        cap_line = np.vstack([[[0.99, 0.3 * B]], np.stack([xs, ys], axis=1), [[-0.99, 0.3 * B]]])
        back = np.vstack([_arc(B, np.pi - 0.5, 2 * np.pi + 0.5, 1.14 + v, n=44, bumps=0.08),
                          [[1.02, 0.55 * B], [-1.02, 0.55 * B]]])
    elif style in ("long", "bob"):
        bottom = 0.45 * B if style == "bob" else 0.15 * B
        cap_outer = _arc(B, np.pi - 0.5, 2 * np.pi + 0.5, 1.02 + v)
        part = 0.18 if ident.seed % 2 else -0.18       # parting side varies between people
        ctrl = [(1.04, bottom), (0.9, 0.0), (0.82, -0.3 * B), (0.6, -0.5 * B), (part, -0.62 * B),
                (-0.18 * np.sign(part), -0.52 * B), (-0.62, -0.46 * B), (-0.85, -0.25 * B),
                (-0.92, 0.05 * B), (-1.04, bottom)]
        cap_line = _smooth(ctrl)
        w = (1.08 if style == "long" else 1.1) + v
        end = [[w, 0.3 * B], [w + 0.12, B + 0.45], [0.75, B + 0.62], [-0.75, B + 0.62], [-w - 0.12, B + 0.45],
               [-w, 0.3 * B]] if style == "long" else [
               [w, 0.4 * B], [w - 0.02, 0.75 * B], [0.8, 0.8 * B], [-0.8, 0.8 * B], [-w + 0.02, 0.75 * B],
               [-w, 0.4 * B]]
        back = np.vstack([_arc(B, np.pi, 2 * np.pi, 1.02 + v, n=28), end])
    return back, cap_outer, cap_line, tuple(side)


class _Static:
    """Everything about an identity's drawing that does not change between frames (cached).

    Shapes are in frontal face coordinates; the per-frame code only moves the parts that an
    expression or the mouth changes and projects everything at once.
    """

    def __init__(self, ident: FaceIdentity):
        B = self.B = ident.face_ratio
        self.outline = _outline(ident)
        self.outline_jw = _jaw_weight(self.outline[:, 1], B)
        self.back_hair, self.cap_outer, cap_line, self.side_hair = _hair(ident)
        self.cap_line = cap_line
        self.cap_w = None if cap_line is None else _rim_weight(cap_line)
        self.sheen = None
        if self.cap_outer is not None:       # a highlight arc on the upper-left of the hair
            m = len(self.cap_outer)
            self.sheen = self.cap_outer[m // 3: m // 2] * 0.9
        self.bald_sheen = _arc(B, np.pi + 0.7, 2 * np.pi - 0.9, 0.6, n=10) + [0.0, -0.2 * B]

        skin = ident.skin
        self.skin = tuple(int(c) for c in skin)
        self.skin_shadow = _shade(skin, 0.84)
        self.skin_dark = _shade(skin, 0.68)
        self.skin_light = _mix(skin, (255, 255, 255), 0.16)
        self.crease_col = _mix(skin, self.skin_dark, 0.7)
        self.bridge_col = _mix(skin, self.skin_dark, 0.6)
        self.nostril_col = _mix(self.skin_dark, (40, 20, 20), 0.5)
        self.hair_dark = _shade(ident.hair_colour, 0.7)
        self.hair_light = _mix(ident.hair_colour, (255, 255, 255), 0.18)
        self.beard_colour = (_mix(skin, _shade(ident.hair_colour, 0.6), 0.4) if ident.beard == "stubble"
                             else _shade(ident.hair_colour, 0.92))
        self.moustache_colour = _shade(ident.hair_colour, 0.78)
        self.moustache_th = 0.015 + 0.07 * np.sqrt(1.0 - _U[2:-2] ** 2)
        self.lash = _mix(ident.brow_colour, (10, 8, 8), 0.5)
        self.lip_upper = _shade(ident.lip_colour, 0.9)
        self.lip_lower = _mix(ident.lip_colour, (255, 255, 255), 0.06)
        self.lip_line = _shade(ident.lip_colour, 0.55)

        # Ears (behind the head outline) and earring points.
        es, self.ear_y = ident.ear_size, 0.2 * B
        self.ears = [np.stack([s * (1.0 + 0.07 * es) + 0.12 * es * _CIRCLE[:, 0],
                               self.ear_y + 0.22 * es * _CIRCLE[:, 1]], axis=1) for s in (-1.0, 1.0)]
        self.ear_inner = [e[4:12] + [-s * 0.03, 0.0] for e, s in zip(self.ears, (-1.0, 1.0))]
        self.earring = [np.array([[s * (1.0 + 0.05 * es), self.ear_y + 0.22 * es]]) for s in (-1.0, 1.0)]

        my, nb = _MOUTH_Y * B, _NOSE_BASE * B
        # Beard: the jaw below the cheek line up to the mouth and under the nose (full/stubble),
        # or a chin patch (goatee). Both follow the jaw when the mouth opens.
        self.beard_low = self.beard_upper = self.beard_upper_w = self.goatee = None
        W = ident.mouth_width
        if ident.beard in ("full", "stubble"):
            self.beard_low = self.outline[:, 1] > 0.3 * B   # a right -> chin -> left run
            up = _smooth(np.array([[-0.97, 0.3 * B], [-0.72, 0.44 * B], [-(W + 0.08), my - 0.04],
                                   [-(W * 0.6), nb + 0.05], [W * 0.6, nb + 0.05], [W + 0.08, my - 0.04],
                                   [0.72, 0.44 * B], [0.97, 0.3 * B]]))
            self.beard_upper, self.beard_upper_w = up, _rim_weight(up)
        elif ident.beard == "goatee":
            g = _smooth(np.array([[-0.6 * W, my + 0.1], [-0.3, 0.9 * B], [0.0, 0.97 * B], [0.3, 0.9 * B],
                                  [0.6 * W, my + 0.1], [0.0, my + 0.15]]), 2, closed=True)
            self.goatee = (g, _jaw_weight(g[:, 1], B))

        # Eyes: everything but the lids' opening, blink and gaze.
        ew = self.ew = ident.eye_width
        self.u0 = ew * ident.eye_height * 0.62
        self.l0 = ew * ident.eye_height * 0.42
        t_out = _SIDES * _T_EYE
        self.s_up = np.sqrt(1.0 - _T_EYE ** 2) * (1.0 - 0.15 * t_out)
        self.t_out_pos = np.clip(t_out, 0.0, None)
        self.lo_shape = (1.0 - _T_EYE ** 2) ** 0.55
        self.eye_x = _T_EYE * ew
        ang = -_SIDES * ident.eye_tilt                     # outer corner up for eye_tilt > 0
        self.eye_ca, self.eye_sa = np.cos(ang), np.sin(ang)
        self.eye_centre = np.hstack([_SIDES * ident.eye_spacing, np.zeros((2, 1))])
        ct = _T_EYE[2:-2]
        self.crease = self.place_eye(np.broadcast_to(ct * ew * 1.02, (2, len(ct))),
                                     np.broadcast_to(-self.u0 * 1.55 * np.sqrt(1 - ct ** 2) - 0.012, (2, len(ct))))

        # Brows.
        t = _T_BROW
        self.brow_outer_x = ident.eye_spacing + ew * 1.3
        self.brow_inner_x = ident.eye_spacing - ew * 1.05
        arch = (0.02 + 0.06 * ident.brow_arch) * np.sin(np.pi * np.clip(t / 0.62, 0, 1) * 0.5)
        arch *= 1 - 0.8 * np.clip((t - 0.62) / 0.38, 0, 1)
        self.brow_y = -self.u0 - 0.16 - arch - 0.05 * t
        self.brow_th = ident.brow_thickness * (1.15 - 0.55 * t)

        # Nose (at rest; a wrinkle lifts the base and flares the nostrils).
        ns, nw = ident.nose_size, ident.nose_width
        top = -0.06
        yb = np.linspace(top, nb - 0.07, 6)
        self.bridge = np.stack([0.07 * nw + 0.02 * (yb - top), yb], axis=1)
        self.bridge_dz = 0.26 * ns * ((yb - top) / (nb - 0.07 - top)) ** 1.3
        self.nose_tip = np.array([[-0.02, nb - 0.08]])
        self.alae = [_smooth(np.array([[s * 0.05 * nw, nb - 0.11], [s * 0.14 * nw, nb - 0.06],
                                       [s * 0.13 * nw, nb - 0.005], [s * 0.07 * nw, nb + 0.005]])) for s in (-1, 1)]
        self.nostrils = [np.array([s * 0.065 * nw, nb - 0.02]) + _CIRCLE * [0.035 * nw, 0.018] for s in (-1, 1)]
        xs = np.linspace(-0.09, 0.09, 5)
        self.nose_wrinkles = [np.stack([xs, 0.02 + 0.045 * i - 0.02 * np.cos(xs * 12)], axis=1) for i in range(3)]

        # Expression lines, drawn only when an expression asks for them.
        self.forehead = []
        for i in range(3):
            xs = np.linspace(-0.42 + 0.05 * i, 0.42 - 0.05 * i, 7)
            self.forehead.append(np.stack([xs, -0.42 * B + 0.075 * i - 0.02 * np.cos(xs * 3.0)], axis=1))
        self.glabella = [np.array([[s * 0.05, -0.24], [s * 0.07, -0.12]]) for s in (-1.0, 1.0)]

        # Glasses: lens rims (closed), arms to the ears, bridge.
        self.glasses: list[tuple[np.ndarray, float | np.ndarray, bool]] = []
        if ident.glasses != "none":
            inner_edges = []
            for s in (-1.0, 1.0):
                c = np.array([s * ident.eye_spacing, -0.01])
                if ident.glasses == "round":
                    lens = c + _CIRCLE * [ew * 1.3, ew * 1.2]
                else:   # superellipse: a rounded rectangle
                    cs, sn = np.cos(_ANG), np.sin(_ANG)
                    lens = c + np.stack([np.sign(cs) * np.abs(cs) ** 0.45 * ew * 1.42,
                                         np.sign(sn) * np.abs(sn) ** 0.45 * ew * 0.95], axis=1)
                half = lens[:, 0].max() - c[0]
                self.glasses.append((lens, 0.12, True))
                arm = np.array([c + [s * half, -0.03], [s * 0.99, -0.03]])
                self.glasses.append((arm, np.array([0.12, 0.0]), False))
                inner_edges.append(c + [-s * half, -0.02])
            self.glasses.append((np.array([inner_edges[0], [0.0, -0.06], inner_edges[1]]), 0.14, False))

        # Hat: (kind, shape, dz, rim weight, colour) in drawing order.
        self.hat: list[tuple[str, np.ndarray, float, float | np.ndarray, tuple[int, int, int]]] = []
        dark = _shade(ident.hat_colour, 0.75)
        if ident.hat == "beanie":
            edge = _smooth(np.array([[1.08, -0.28 * B], [0.5, -0.42 * B], [-0.5, -0.42 * B], [-1.08, -0.28 * B]]))
            dome = _arc(B, np.pi - 0.3, 2 * np.pi + 0.3, 1.1, n=28)
            band = edge.copy()
            band[:, 1] -= 0.17
            ew_ = _rim_weight(edge)
            self.hat.append(("fill", np.vstack([dome, edge]), 0.06, np.concatenate([np.ones(len(dome)), ew_]),
                             ident.hat_colour))
            self.hat.append(("fill", np.vstack([edge, band[::-1]]), 0.06, np.concatenate([ew_, ew_[::-1]]), dark))
            for i in range(-3, 4):
                self.hat.append(("line", np.array([[0.18 * i, -0.6 * B], [0.2 * i, -0.95 * B]]), 0.05, 0.0, dark))
        elif ident.hat == "cap":
            edge = _smooth(np.array([[1.06, -0.18 * B], [0.5, -0.45 * B], [-0.5, -0.45 * B], [-1.06, -0.18 * B]]))
            dome = _arc(B, np.pi - 0.15, 2 * np.pi + 0.15, 1.08, n=28)
            self.hat.append(("fill", np.vstack([dome, edge]), 0.05,
                             np.concatenate([np.ones(len(dome)), _rim_weight(edge)]), ident.hat_colour))
            brim = _smooth(np.array([[0.82, -0.44 * B], [0.6, -0.3 * B], [0.0, -0.24 * B], [-0.6, -0.3 * B],
                                     [-0.82, -0.44 * B], [0.0, -0.5 * B]]), 2, closed=True)
            self.hat.append(("fill", brim, 0.3, 0.0, dark))
            self.hat.append(("dot", np.array([[0.0, -1.07 * B]]), 0.0, 1.0, dark))

    def place_eye(self, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Local eye coordinates (2, n) per eye -> frontal (2, n, 2): tilt, then move to the eye."""
        x = px * self.eye_ca - py * self.eye_sa + self.eye_centre[:, :1]
        y = px * self.eye_sa + py * self.eye_ca + self.eye_centre[:, 1:]
        return np.stack([x, y], axis=2)


@lru_cache(maxsize=512)
def _static(ident: FaceIdentity) -> _Static:
    return _Static(ident)


@lru_cache(maxsize=32)
def _background(ident: FaceIdentity, n: int) -> np.ndarray:
    """Static layer at canvas size n: backdrop gradient, soft light, shoulders, neck (read-only).

    The neck and shoulders do not follow the head pose (the head turns on the neck), so they are
    drawn once here, not per frame.
    """
    top = np.asarray(ident.background_top, dtype=np.float32)
    bot = np.asarray(ident.background_bottom, dtype=np.float32)
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(top + (bot - top) * t, (n, n, 3)).copy()
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    glow = np.exp(-(((xx - 0.5) / 0.45) ** 2 + ((yy - 0.4) / 0.45) ** 2))[..., None]
    img = np.clip(img * (0.9 + 0.14 * glow), 0, 255).astype(np.uint8)

    B = ident.face_ratio
    k = _HEAD_SCALE * n
    off = np.array([0.5 * n, _CENTRE_Y * n])
    y_s = B + 0.42
    a = np.linspace(np.pi, 2 * np.pi, 17)
    shoulders = np.vstack([np.stack([1.85 * np.cos(a), y_s + 0.95 + 0.95 * np.sin(a)], axis=1),
                           [[1.95, 4.0], [-1.95, 4.0]]])
    _fill(img, shoulders * k + off, ident.clothing_colour)
    neck = np.array([[-0.4, 0.55 * B], [0.4, 0.55 * B], [0.46, y_s + 0.15], [0.0, y_s + 0.5], [-0.46, y_s + 0.15]])
    _fill(img, neck * k + off, _shade(ident.skin, 0.84))
    _stroke(img, np.array([[-0.5, y_s + 0.08], [0.0, y_s + 0.52], [0.5, y_s + 0.08]]) * k + off,
            _shade(ident.clothing_colour, 0.7), 0.05 * k)
    img.setflags(write=False)
    return img


# ----------------------------------------------------------------------------- per-frame layout


class _Layout:
    """Projects frontal face coordinates to canvas pixels for one pose.

    Lifted (3D) points: z from the face ellipsoid x^2 + (y/B)^2 + (z/D)^2 = 1 plus a protrusion
    dz, then pitch, yaw, roll about the neck pivot, scale. Silhouette points: the outline of that
    ellipsoid under pitch/yaw is the frontal one squeezed by sx, sy, so they are squeezed, rolled
    and scaled. A per-point weight blends the two (see :func:`_rim_weight`).
    """

    def __init__(self, B: float, state: FaceState, n: int):
        self.B = B
        cw, sw = math.cos(state.yaw), math.sin(state.yaw)
        cp, sp = math.cos(state.pitch), math.sin(state.pitch)
        # First two rows of R = R_yaw @ R_pitch (an orthographic camera drops z'). Pitch:
        # y1 = y cos p + z sin p, z1 = z cos p - y sin p (the nose moves down for p > 0); then yaw:
        # x' = x cos w + z1 sin w (the nose moves right for w > 0).
        rot = np.array([[cw, -sp * sw, cp * sw], [0.0, cp, sp]])
        cr, sr = math.cos(state.roll), math.sin(state.roll)
        roll = np.array([[cr, -sr], [sr, cr]])
        k = self.k = _HEAD_SCALE * n
        pivot = np.array([0.0, B + _PIVOT])
        self.off = k * (pivot - roll @ pivot) + np.array([0.5 * n, _CENTRE_Y * n])
        self.m3 = (k * roll @ rot).T                       # (3, 2)
        squeeze = np.diag([math.hypot(cw, _DEPTH * sw), math.hypot(cp, _DEPTH / B * sp)])
        self.m2 = (k * roll @ squeeze).T                   # (2, 2)

    def project(self, xy: np.ndarray, dz: np.ndarray, w: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        z = _DEPTH * np.sqrt(np.clip(1.0 - x * x - (y / self.B) ** 2, 0.0, 1.0)) + dz
        lifted = xy @ self.m3[:2] + z[:, None] * self.m3[2]
        flat = xy @ self.m2
        return lifted + (flat - lifted) * w[:, None] + self.off


class _Scene:
    """Draw list of one frame: shapes are collected in frontal coordinates, projected in one go,
    then drawn in order. (Projecting shape by shape costs far more in NumPy call overhead than
    the drawing itself at these sizes.)"""

    __slots__ = ("parts", "dz", "w", "extra", "ops", "named")

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.dz: list[float] = []
        self.w: list[float] = []
        self.extra: list[tuple[int, object, object]] = []
        self.ops: list[tuple] = []
        self.named: dict[str, int] = {}

    def add(self, xy: np.ndarray, dz=0.0, w=0.0) -> int:
        """A shape; dz (protrusion) and w (silhouette weight) are scalars or per-point arrays."""
        i = len(self.parts)
        self.parts.append(xy)
        da, wa = isinstance(dz, np.ndarray), isinstance(w, np.ndarray)
        self.dz.append(0.0 if da else dz)
        self.w.append(0.0 if wa else w)
        if da or wa:
            self.extra.append((i, dz if da else None, w if wa else None))
        return i

    def fill(self, colour, *polys) -> None:
        """Fill polygons; a polygon is a part index or a tuple of indices joined end to end."""
        self.ops.append((0, polys, colour, 0.0))

    def stroke(self, colour, width: float, *polys, closed: bool = False) -> None:
        self.ops.append((2 if closed else 1, polys, colour, width))

    def dot(self, colour, radius: float, part: int) -> None:
        self.ops.append((3, (part,), colour, radius))

    def project(self, L: _Layout) -> tuple[np.ndarray, np.ndarray]:
        counts = np.fromiter((len(p) for p in self.parts), dtype=np.int64, count=len(self.parts))
        starts = np.concatenate([[0], np.cumsum(counts)])
        xy = np.concatenate(self.parts)
        dz = np.repeat(np.asarray(self.dz), counts)
        w = np.repeat(np.asarray(self.w), counts)
        for i, d, ww in self.extra:
            s, e = starts[i], starts[i + 1]
            if d is not None:
                dz[s:e] = d
            if ww is not None:
                w[s:e] = ww
        return L.project(xy, dz, w), starts

    def draw(self, img: np.ndarray, pts: np.ndarray, starts: np.ndarray, k: float) -> None:
        fixed = np.round(pts * _FIX).astype(np.int32)
        seg = [fixed[starts[i]:starts[i + 1]] for i in range(len(self.parts))]
        for kind, polys, colour, width in self.ops:
            arrays = [seg[p] if isinstance(p, int) else np.concatenate([seg[q] for q in p]) for p in polys]
            if kind == 0:
                cv2.fillPoly(img, arrays, colour, _LINE, _SHIFT)
            elif kind == 3:
                c = arrays[0][0]
                cv2.circle(img, (int(c[0]), int(c[1])), max(1, int(round(width * k * _FIX))), colour, -1, _LINE, _SHIFT)
            else:
                cv2.polylines(img, arrays, kind == 2, colour, max(1, int(round(width * k))), _LINE, _SHIFT)


# ------------------------------------------------------------------------------ mouth and eyes


def _mouth(ident: FaceIdentity, st: FaceState, ex: Expression, B: float):
    """Lip contours in frontal coordinates from speech + expression.

    Returns (outer_top, outer_bottom, inner_top, inner_bottom, open_top, open_bottom, gap, drop,
    half_width, protrusion); inner_* span the whole width (they are the lip line outside the
    opening), open_* only the opening.
    """
    my = _MOUTH_Y * B
    # Soft union: the expression's jaw drop opens a closed mouth, barely changes a wide-open one.
    opening = 1.0 - (1.0 - st.mouth_open) * (1.0 - min(ex.jaw, 1.0))
    opening *= 1.0 - 0.35 * ex.press
    rnd = min(1.0, max(st.mouth_round, ex.round))
    fw = (0.72 + 0.56 * st.mouth_width) * (1.0 - 0.3 * rnd)
    fw *= (1.0 + 0.22 * ex.stretch + 0.14 * max(ex.corner, 0.0)) * (1.0 - 0.1 * opening)
    W = ident.mouth_width * fw
    H = 0.40 * opening
    rho = 0.9 - 0.15 * rnd                   # the opening's share of the mouth width
    kexp = 2.0 + 1.8 * (1.0 - rnd) * (0.5 + st.mouth_width)   # rounder for /o/, flatter for /i/
    up = 0.3 + 0.2 * max(0.0, rnd - 0.5)     # share of the opening above the lip line

    u = _U
    ui = _UI * rho
    uu = np.concatenate([u, ui])
    a = np.minimum(np.abs(uu) / rho, 1.0)
    prof = (1.0 - a ** kexp) ** (1.0 / kexp)
    # Lip line: corners lifted by a smile, pulled down by a frown; a sad pout lifts the centre.
    u2 = uu * uu
    line = (my - 0.12 * (ex.corner * u2 + ex.corner_right * np.maximum(uu, 0.0) ** 2)
            + 0.03 * ex.stretch * u2 - 0.02 * ex.pout * (1.0 - u2))
    top = line - H * up * prof - 0.075 * ex.upper_lip * np.exp(-4.0 * u2)
    bottom = line + H * (1.0 - up) * prof
    thick = ident.lip_thickness * (1.0 - 0.55 * ex.press) * (1.0 - 0.35 * ex.stretch) * (1.0 + 0.45 * rnd)
    n = len(u)
    tu = 0.07 * thick * _LIP_UPPER
    tl = 0.09 * thick * (1.0 + 0.3 * ex.pout) * _LIP_LOWER
    x = u * W
    xi = ui * W
    open_top, open_bottom = top[n:], bottom[n:]
    return (np.stack([x, top[:n] - tu], axis=1), np.stack([x, bottom[:n] + tl], axis=1),
            np.stack([x, top[:n]], axis=1), np.stack([x, bottom[:n]], axis=1),
            np.stack([xi, open_top], axis=1), np.stack([xi, open_bottom], axis=1),
            float(np.max(open_bottom - open_top)), H * (1.0 - up) * 0.9, W, 0.05 + 0.1 * rnd)


# Lip thickness profiles across the mouth: tapering to the corners, a cupid's-bow dip on top.
_LIP_UPPER = (1.0 - _U * _U) ** 0.6 * (1.0 - 0.3 * np.exp(-((_U / 0.13) ** 2)))
_LIP_LOWER = (1.0 - _U * _U) ** 0.5


def _eyes(S: _Static, st: FaceState, ex: Expression):
    """Both eyes at once, frontal coordinates, arrays (2, n, 2) (image-left eye first).

    Returns (upper lid, lower lid, sclera or None, iris or None, pupil or None, glint flags).
    """
    open_up = S.u0 * (1.0 + ex.eye_wide) * (1.0 - 0.4 * ex.droop * S.t_out_pos)
    lower = S.l0 * (1.0 - 0.5 * min(ex.lower_lid, 1.0)) * (1.0 + 0.35 * max(ex.eye_wide, 0.0))
    y_lo = np.broadcast_to(lower * S.lo_shape, (2, len(_T_EYE)))
    b = float(st.blink)
    # A blink brings the upper lid down onto the lower one: at blink = 1 the opening is empty.
    y_up = (1.0 - b) * (-open_up * S.s_up) + b * y_lo
    x = np.broadcast_to(S.eye_x, (2, len(_T_EYE)))
    upper = S.place_eye(x, y_up)
    lower_line = S.place_eye(x, y_lo)
    if float((y_lo - y_up).max()) < 1e-3:
        return upper, lower_line, None, None, None, None
    sclera = S.place_eye(np.concatenate([x, x[:, ::-1]], axis=1), np.concatenate([y_up, y_lo[:, ::-1]], axis=1))
    # Iris and pupil: circles intersected with the opening. Both are y-convex, so clamping each
    # circle point's y into [upper(x), lower(x)] traces the intersection's outline.
    ew = S.ew
    ri = (S.u0 + S.l0) * 0.58
    icx = st.gaze_x * ew * 0.38
    icy = st.gaze_y * S.u0 * 0.35 + 0.12 * S.l0
    gx, gy = icx - ri * 0.3, icy - ri * 0.35
    px = np.concatenate([icx + ri * _CIRCLE[:, 0], icx + 0.46 * ri * _CIRCLE[:, 0], [gx]])
    py = np.concatenate([icy + ri * _CIRCLE[:, 1], icy + 0.46 * ri * _CIRCLE[:, 1], [gy]])
    px = np.clip(px, -ew * 0.97, ew * 0.97)
    f = (px / ew + 1.0) * 0.5 * (len(_T_EYE) - 1)
    i0 = np.minimum(f.astype(np.int64), len(_T_EYE) - 2)
    fr = f - i0
    up_at = y_up[:, i0] * (1 - fr) + y_up[:, i0 + 1] * fr
    lo_at = y_lo[:, i0] * (1 - fr) + y_lo[:, i0 + 1] * fr
    glint = (up_at[:, -1] + 0.15 * ri < gy) & (gy < lo_at[:, -1])
    py = np.clip(py, up_at, lo_at)
    placed = S.place_eye(np.broadcast_to(px, py.shape), py)
    m = len(_CIRCLE)
    return upper, lower_line, sclera, placed[:, :m], placed[:, m:2 * m], (placed[:, 2 * m:], glint)


def _brows(S: _Static, ex: Expression) -> np.ndarray:
    """Both brows as centre lines (2, 9, 2) with thickness S.brow_th (frontal coordinates)."""
    t = _T_BROW
    inner_x = S.brow_inner_x - 0.07 * ex.brow_squeeze
    x = _SIDES * (inner_x + (S.brow_outer_x - inner_x) * t)
    extra = np.array([[ex.brow_left], [0.0]])
    raise_ = (ex.brow_inner + extra) * (1.0 - t) + (ex.brow_outer + extra) * t
    y = S.brow_y - 0.085 * np.clip(raise_, -1.1, 1.3)
    return np.stack([x, y], axis=2)


# --------------------------------------------------------------------------------------- drawing


def _fill(img: np.ndarray, pts: np.ndarray, colour) -> None:
    cv2.fillPoly(img, [np.round(pts * _FIX).astype(np.int32)], colour, _LINE, _SHIFT)


def _stroke(img: np.ndarray, pts: np.ndarray, colour, width_px: float) -> None:
    cv2.polylines(img, [np.round(pts * _FIX).astype(np.int32)], False, colour, max(1, int(round(width_px))),
                  _LINE, _SHIFT)


def _supersample(size: int) -> int:
    """Canvas multiple: enough for smooth edges, bounded so large frames stay cheap."""
    return 4 if size <= 96 else 3 if size <= 160 else 2


def _check_size(size: int) -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise TypeError(f"size must be an integer, got {type(size).__name__}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    return int(size)


_SCLERA = (244, 240, 234)
_PUPIL = (14, 10, 10)
_INNER_MOUTH = (58, 18, 24)
_TONGUE_COL = (176, 78, 86)
_TEETH = (236, 232, 220)
_LOWER_TEETH = (214, 210, 198)


def _scene(ident: FaceIdentity, st: FaceState) -> _Scene:
    """The draw list of one frame, back to front."""
    S = _static(ident)
    B = S.B
    ex = expression_of(st)
    sc = _Scene()
    skin = S.skin
    my, nb = _MOUTH_Y * B, _NOSE_BASE * B
    (m_ot, m_ob, m_it, m_ib, m_opt, m_opb, gap, drop, W, protrude) = _mouth(ident, st, ex, B)

    # Jaw-attached points follow the chin down when the mouth opens.
    outline = S.outline.copy()
    outline[:, 1] += drop * S.outline_jw

    # --- behind the head: back hair, ears
    if S.back_hair is not None:
        sc.fill(S.hair_dark, sc.add(S.back_hair, w=1.0))
    ears = [sc.add(e, -0.12) for e in S.ears]
    sc.fill(S.skin_shadow, *ears)
    sc.stroke(S.skin_dark, 0.025, *[sc.add(e, -0.12) for e in S.ear_inner])

    # --- head, with a shadow crescent on the side away from the light (upper left)
    head = sc.add(outline, w=1.0)
    sc.named["outline"] = head
    sc.fill(S.skin_shadow, head)
    shift = np.array([-0.07 + 0.3 * math.sin(st.yaw), -0.05 + 0.2 * math.sin(st.pitch)])
    lit = (outline - shift) * 0.92 + shift
    np.minimum(lit[:, 1], outline[:, 1], out=lit[:, 1])
    sc.fill(skin, sc.add(lit, w=1.0))

    # --- beard (the mouth is drawn over it)
    if S.beard_low is not None:
        sc.fill(S.beard_colour, (sc.add(outline[S.beard_low], w=1.0), sc.add(S.beard_upper, 0.02, S.beard_upper_w)))
    elif S.goatee is not None:
        g, jw = S.goatee
        g = g.copy()
        g[:, 1] += drop * jw
        sc.fill(S.beard_colour, sc.add(g, 0.02))

    # --- hair on the head, hat
    if S.cap_outer is not None:
        sc.fill(ident.hair_colour, (sc.add(S.cap_outer, w=1.0), sc.add(S.cap_line, 0.02, S.cap_w)))
        sc.stroke(S.hair_light, 0.035, sc.add(S.sheen, w=1.0))
    if S.side_hair:
        sc.fill(ident.hair_colour, *[sc.add(p, w=1.0) for p in S.side_hair])
    if ident.hair_style == "bald":
        sc.fill(S.skin_light, sc.add(S.bald_sheen, w=1.0))
    for kind, shape, dz, w, colour in S.hat:
        part = sc.add(shape, dz, w)
        if kind == "fill":
            sc.fill(colour, part)
        elif kind == "line":
            sc.stroke(colour, 0.02, part)
        else:
            sc.dot(colour, 0.05, part)

    # --- cheeks, folds, wrinkles
    if ex.cheek > 0.05:
        blush = _mix(skin, (228, 110, 110), 0.22 * min(ex.cheek, 1.0))
        cy = 0.26 * B - 0.05 * ex.cheek
        sc.fill(blush, *[sc.add(np.array([s * (ident.eye_spacing + 0.06), cy]) + _CIRCLE * [0.17, 0.1])
                         for s in (-1.0, 1.0)])
    fold = min(1.0, ex.cheek + ex.nose_wrinkle + 0.5 * max(-ex.corner, 0.0) + 0.5 * ex.stretch)
    if fold > 0.05:
        folds = []
        for s in (-1.0, 1.0):
            cx = W + 0.04
            cy = my - 0.12 * (ex.corner + (ex.corner_right if s > 0 else 0.0))
            ctrl = np.array([[s * 0.16 * ident.nose_width, nb - 0.04], [s * (cx + 0.06), 0.5 * (nb + cy)],
                             [s * cx, cy + 0.02]])
            folds.append(sc.add(_bezier(ctrl)))
        sc.stroke(_mix(skin, S.skin_dark, 0.15 + 0.75 * fold), 0.022, *folds)
    brow_up = 0.5 * (ex.brow_inner + ex.brow_outer)
    if brow_up > 0.3:
        sc.stroke(_mix(skin, S.skin_dark, min(1.0, (brow_up - 0.3) * 0.9)), 0.018,
                  *[sc.add(f) for f in S.forehead])
    if ex.brow_squeeze > 0.4 and ex.brow_inner < 0:
        sc.stroke(_mix(skin, S.skin_dark, min(1.0, ex.brow_squeeze - 0.2)), 0.02,
                  *[sc.add(g) for g in S.glabella])

    # --- brows
    brows = _brows(S, ex)
    th = S.brow_th[:, None] * 0.5
    brow_parts = []
    for i in range(2):
        c = brows[i]
        poly = np.vstack([c - [0.0, 1.0] * th, (c + [0.0, 1.0] * th)[::-1]])
        brow_parts.append(sc.add(poly, -0.01))
        sc.named[("left_brow", "right_brow")[i]] = sc.add(c, -0.01)
    sc.fill(ident.brow_colour, *brow_parts)

    # --- eyes
    upper, lower, sclera, iris, pupil, glint = _eyes(S, st, ex)
    sc.stroke(S.crease_col, 0.02, *[sc.add(S.crease[i], -0.02) for i in range(2)])
    if sclera is not None:
        sc.fill(_SCLERA, *[sc.add(sclera[i], -0.03) for i in range(2)])
        sc.fill(ident.eye_colour, *[sc.add(iris[i], -0.03) for i in range(2)])
        sc.fill(_PUPIL, *[sc.add(pupil[i], -0.03) for i in range(2)])
        for i in range(2):
            if glint[1][i]:
                sc.dot((255, 255, 255), 0.018, sc.add(glint[0][i], -0.02))
    sc.stroke(S.skin_dark, 0.014, *[sc.add(lower[i], -0.02) for i in range(2)])
    sc.stroke(S.lash, 0.032, *[sc.add(upper[i], -0.02) for i in range(2)])
    for i, name in enumerate(("left_eye", "right_eye")):
        sc.named[name] = sc.add(np.vstack([upper[i], lower[i][::-1]]), -0.03)
        sc.named[name + "_centre"] = sc.add(S.eye_centre[i:i + 1], -0.03)

    # --- nose (a wrinkle lifts the base and flares the nostrils)
    ns, nw = ident.nose_size, ident.nose_width
    sc.stroke(S.bridge_col, 0.025, sc.add(S.bridge, S.bridge_dz))
    sc.dot(S.skin_light, 0.06 * nw, sc.add(S.nose_tip, 0.24 * ns))
    lift = np.array([0.0, -0.03 * ex.nose_wrinkle])
    flare = np.array([1.0 + 0.25 * ex.nose_wrinkle, 1.0])
    sc.stroke(S.skin_dark, 0.022, *[sc.add(a * flare + lift, 0.1 * ns) for a in S.alae])
    sc.fill(S.nostril_col, *[sc.add(n * flare + lift, 0.1 * ns) for n in S.nostrils])
    if ex.nose_wrinkle > 0.2:
        sc.stroke(_mix(skin, S.skin_dark, min(1.0, ex.nose_wrinkle)), 0.016,
                  *[sc.add(w, 0.08 * ns) for w in S.nose_wrinkles])
    sc.named["nose_tip"] = sc.add(np.array([[0.0, nb - 0.06]]), 0.26 * ns)

    # --- moustache (under the lips' upper edge), then the mouth
    if ident.moustache:
        # A crescent resting on the upper lip, thickest in the middle, kept below the nose.
        top = m_ot[2:-2]
        low_y = top[:, 1] - 0.006
        up_y = np.maximum(low_y - S.moustache_th, nb + 0.04)
        sc.fill(S.moustache_colour, sc.add(np.vstack([np.stack([top[:, 0] * 1.07, low_y], axis=1),
                                                      np.stack([top[::-1, 0] * 0.98, up_y[::-1]], axis=1)]), 0.06))
    dz = protrude
    sc.fill(S.lip_upper, sc.add(np.vstack([m_ot, m_it[::-1]]), dz))
    sc.fill(S.lip_lower, sc.add(np.vstack([m_ib, m_ob[::-1]]), dz))
    if gap > 0.006:
        gaps = m_opb[:, 1] - m_opt[:, 1]
        sc.fill(_INNER_MOUTH, sc.add(np.vstack([m_opt, m_opb[::-1]]), dz - 0.02))
        ot, ob, g = m_opt[3:-3], m_opb[3:-3], gaps[3:-3]
        if gap > 0.09:
            h = np.minimum(0.09, 0.38 * g) * _TONGUE
            sc.fill(_TONGUE_COL, sc.add(np.vstack([ob, (ob - np.stack([0 * h, h], axis=1))[::-1]]), dz - 0.02))
        h = np.minimum(0.06, 0.5 * g)
        sc.fill(_TEETH, sc.add(np.vstack([ot, (ot + np.stack([0 * h, h], axis=1))[::-1]]), dz - 0.01))
        if gap > 0.2:
            h = np.minimum(0.035, 0.2 * g)
            sc.fill(_LOWER_TEETH, sc.add(np.vstack([ob, (ob - np.stack([0 * h, h], axis=1))[::-1]]), dz - 0.01))
    else:
        sc.stroke(S.lip_line, 0.02, sc.add(m_it, dz))
    sc.named["mouth_outer"] = sc.add(np.vstack([m_ot, m_ob[::-1]]), dz)
    sc.named["mouth_inner"] = sc.add(np.vstack([m_opt, m_opb[::-1]]), dz)
    sc.named["mouth_centre"] = sc.add(np.array([[0.0, my]]), dz)

    # --- glasses and earrings in front
    if S.glasses:
        rims = [sc.add(shape, dzs) for shape, dzs, closed in S.glasses if closed]
        sc.stroke(ident.glasses_colour, 0.032, *rims, closed=True)
        rest = [sc.add(shape, dzs) for shape, dzs, closed in S.glasses if not closed]
        sc.stroke(ident.glasses_colour, 0.03, *rest)
    if ident.earrings:
        for e in S.earring:
            sc.dot(ident.earring_colour, 0.045, sc.add(e, -0.12))
    return sc


# ------------------------------------------------------------------------------------ public API


def render(identity: FaceIdentity, state: FaceState, size: int) -> np.ndarray:
    """One frame: ``(size, size, 3)`` uint8 RGB, a pure function of (identity, state, size)."""
    size = _check_size(size)
    ss = _supersample(size)
    n = size * ss
    img = _background(identity, n).copy()
    sc = _scene(identity, state)
    pts, starts = sc.project(_Layout(identity.face_ratio, state, n))
    sc.draw(img, pts, starts, _HEAD_SCALE * n)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def face_landmarks(identity: FaceIdentity, state: FaceState, size: int) -> dict[str, np.ndarray]:
    """Where :func:`render` puts the features of a frame, in output pixel coordinates (x, y).

    Keys: ``mouth_outer`` / ``mouth_inner`` (lip contour / opening polygons; the inner one is
    degenerate when the mouth is closed), ``mouth_centre``, ``left_eye`` / ``right_eye`` (eyelid
    polygons; image left/right), their ``*_centre``, ``left_brow`` / ``right_brow`` (centre lines),
    ``nose_tip`` and ``outline`` (head silhouette). Exact ground truth, e.g. for mouth crops in
    lip-sync checks; points are (x, y) with y down, single points have shape (2,).
    """
    size = _check_size(size)
    ss = _supersample(size)
    n = size * ss
    sc = _scene(identity, state)
    pts, starts = sc.project(_Layout(identity.face_ratio, state, n))
    out = {}
    for name, i in sc.named.items():
        p = (pts[starts[i]:starts[i + 1]] + 0.5) / ss - 0.5   # canvas pixel centres -> output pixels
        out[name] = p[0] if name.endswith("centre") or name == "nose_tip" else p
    return out
