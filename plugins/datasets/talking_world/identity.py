"""Face identities of the talking_world synthetic dataset (issue 4), derived from an integer seed.

A :class:`FaceIdentity` holds everything about a person that stays fixed over a video: face shape,
skin, hair, eyes, brows, nose, lips, accessories, clothing and backdrop. MEMO's first claim is that
identity is kept over thousands of frames (spec §0), so the synthetic world needs many identities
that are (a) exactly reproducible from a seed, (b) clearly different from one another and (c) all
plausible faces. The renderer (:mod:`.face`) draws an identity in a :class:`~.face.FaceState`.

Determinism: every attribute is a function of a fixed-length vector of uniform doubles drawn from
``numpy.random.default_rng(seed)``. Only ``Generator.random`` is used, the most stable NumPy stream
(plus a per-block draw that stratifies hair styles and skin tones over consecutive seeds), and
new attributes must be derived from *new* slots at the end of the vector, so adding an
attribute never changes the existing ones of an old seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]

HAIR_STYLES: tuple[str, ...] = ("short", "long", "bald", "curly", "fringe", "bob")
BEARDS: tuple[str, ...] = ("none", "stubble", "goatee", "full")
GLASSES: tuple[str, ...] = ("none", "round", "square")
HATS: tuple[str, ...] = ("none", "beanie", "cap")

# Skin tones from very light to very dark (RGB); an identity interpolates along this ramp so the
# whole range of human skin is covered, never a green or blue face.
_SKIN_RAMP = np.array([
    (255, 226, 204), (243, 200, 168), (226, 176, 136), (200, 140, 100),
    (165, 108, 74), (122, 78, 52), (86, 56, 40)], dtype=np.float64)
_HAIR_COLOURS: tuple[RGB, ...] = (
    (28, 24, 24), (58, 40, 30), (96, 64, 40), (138, 62, 34), (210, 172, 104),
    (232, 206, 150), (168, 164, 162), (186, 96, 46))
_EYE_COLOURS: tuple[RGB, ...] = (
    (62, 38, 24), (108, 70, 40), (128, 108, 58), (76, 118, 78), (64, 112, 168), (118, 130, 142))
_METALS: tuple[RGB, ...] = ((212, 175, 55), (200, 200, 206), (184, 115, 51))

# Number of uniform slots consumed; the first len(_SLOTS) are used, the rest are reserved so
# future attributes can be appended without shifting existing ones.
_NUM_SLOTS = 48
_BLOCK = 6          # stratification block (== len(HAIR_STYLES))
_MIN_HAIR_CONTRAST = 70.0   # minimum RGB distance between hair and skin


def _hsv_to_rgb(h: float, s: float, v: float) -> RGB:
    """HSV in [0, 1] to 8-bit RGB (plain formula: no colour-space library needed)."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def _pick(options: tuple, u: float):
    return options[min(int(u * len(options)), len(options) - 1)]


def _jitter(colour: RGB, u: float, amount: float) -> RGB:
    """Scale a colour's brightness by 1 +- amount, so two picks of one palette entry still differ."""
    k = 1.0 + amount * (2.0 * u - 1.0)
    return tuple(int(np.clip(round(c * k), 0, 255)) for c in colour)  # type: ignore[return-value]


def _dist(a: RGB, b: RGB) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64)))


def _mix(a: RGB, b: RGB, w: float) -> RGB:
    return tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))  # type: ignore[return-value]


@dataclass(frozen=True)
class FaceIdentity:
    """Everything that stays fixed about one synthetic person.

    Lengths are in units of the head's half-width (the renderer's face coordinate frame); colours
    are 8-bit RGB. Build one with :meth:`from_seed`; the dataclass is frozen and hashable so the
    renderer can cache per-identity layers keyed on it.
    """

    seed: int
    face_ratio: float        # head half-height (crown to chin) / half-width, 1.18 .. 1.42
    jaw_square: float        # 0 soft oval jaw .. 1 square jaw
    chin_point: float        # 0 broad chin .. 1 pointed chin
    skin: RGB
    hair_style: str          # one of HAIR_STYLES
    hair_colour: RGB
    hair_volume: float       # 0 flat .. 1 voluminous
    eye_width: float         # half-width of one eye, 0.17 .. 0.23
    eye_height: float        # opening height / eye width, 0.38 (almond) .. 0.60 (round)
    eye_tilt: float          # radians, outer corner up when > 0
    eye_spacing: float       # x of each eye centre, 0.36 .. 0.44
    eye_colour: RGB
    brow_thickness: float    # 0.035 .. 0.085
    brow_arch: float         # 0 straight .. 1 arched
    brow_colour: RGB
    nose_size: float         # length/protrusion scale, 0.8 .. 1.25
    nose_width: float        # 0.8 .. 1.3
    lip_colour: RGB
    lip_thickness: float     # 0.7 .. 1.35
    mouth_width: float       # half-width of the mouth at rest, 0.30 .. 0.40
    ear_size: float          # 0.85 .. 1.15
    glasses: str             # one of GLASSES
    glasses_colour: RGB
    earrings: bool
    earring_colour: RGB
    beard: str               # one of BEARDS
    moustache: bool
    hat: str                 # one of HATS
    hat_colour: RGB
    clothing_colour: RGB
    background_top: RGB
    background_bottom: RGB

    @classmethod
    def from_seed(cls, seed: int) -> "FaceIdentity":
        """The identity of ``seed``: same seed, same person, on every machine and run."""
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"identity seed must be an integer, got {type(seed).__name__}")
        if seed < 0:
            raise ValueError(f"identity seed must be >= 0, got {seed}")
        u = [float(x) for x in np.random.default_rng(int(seed)).random(_NUM_SLOTS)]  # plain floats in the dataclass
        # Consecutive seeds are what datasets use (0, 1, 2, ...), so hair style and skin tone are
        # stratified over blocks of 6 seeds: within a block every style appears once and the skin
        # tones spread over the whole ramp, in a per-block random order. Independent draws would
        # leave runs of look-alikes (e.g. four bald heads among seeds 0-5).
        block = np.random.default_rng([int(seed) // _BLOCK, 0xFACE]).random((2, _BLOCK))
        slot = int(seed) % _BLOCK
        style_rank = int(np.argsort(block[0])[slot])
        skin_rank = int(np.argsort(block[1])[slot])

        skin_pos = (skin_rank + u[3]) / _BLOCK * (len(_SKIN_RAMP) - 1)
        lo = int(np.floor(skin_pos))
        hi = min(lo + 1, len(_SKIN_RAMP) - 1)
        skin_f = _SKIN_RAMP[lo] + (_SKIN_RAMP[hi] - _SKIN_RAMP[lo]) * (skin_pos - lo)
        # A slight warm/cool shift of the tone: real skin varies in undertone, not only lightness.
        skin_f = skin_f * np.array([1.0 + 0.04 * (u[4] - 0.5), 1.0, 1.0 - 0.06 * (u[4] - 0.5)])
        skin: RGB = tuple(int(v) for v in np.clip(np.round(skin_f), 0, 255))  # type: ignore[assignment]

        hair_style = HAIR_STYLES[style_rank % len(HAIR_STYLES)]
        hair_colour = _jitter(_pick(_HAIR_COLOURS, u[6]), u[7], 0.15)
        # Hair close to the skin tone (blonde on tan, brown on brown) hides the hairline; such
        # hair is darkened or lightened, whichever separates it more, so the head stays readable.
        if _dist(hair_colour, skin) < _MIN_HAIR_CONTRAST:
            options = (_jitter(hair_colour, 0.0, 0.45), _mix(hair_colour, (222, 190, 128), 0.6))
            hair_colour = max(options, key=lambda c: _dist(c, skin))
        # Brows are usually a bit darker than the hair (bald people keep their brows: use a
        # darkened skin-derived brown then).
        brow_base = _mix(hair_colour, (20, 16, 14), 0.35) if hair_style != "bald" else _mix(skin, (40, 30, 24), 0.7)

        # Lips: the skin tone pulled towards a rose/brown, with per-person saturation.
        lip_colour = _mix(skin, (170 + int(40 * u[8]), 70 + int(30 * u[9]), 80), 0.45 + 0.2 * u[10])

        beard = "none"
        moustache = False
        if u[11] < 0.32:
            beard = _pick(BEARDS[1:], u[12])
            moustache = beard == "full" or u[13] < 0.5
        elif u[11] < 0.40:
            moustache = True

        # Backdrop: any hue, muted, so the face stays the salient object; a lighter top and a
        # darker bottom give the studio-portrait gradient.
        bg_h, bg_s = u[14], 0.15 + 0.35 * u[15]
        background_top = _hsv_to_rgb(bg_h, bg_s * 0.8, 0.72 + 0.22 * u[16])
        background_bottom = _hsv_to_rgb((bg_h + 0.04 * (u[17] - 0.5)) % 1.0, bg_s, 0.35 + 0.3 * u[16])
        clothing_colour = _hsv_to_rgb(u[18], 0.25 + 0.55 * u[19], 0.25 + 0.6 * u[20])
        hat_colour = _hsv_to_rgb(u[21], 0.3 + 0.5 * u[22], 0.25 + 0.55 * u[23])

        return cls(
            seed=int(seed),
            face_ratio=1.18 + 0.24 * u[0],
            jaw_square=float(u[1]),
            chin_point=float(u[2]),
            skin=skin,
            hair_style=hair_style,
            hair_colour=hair_colour,
            hair_volume=float(u[24]),
            eye_width=0.17 + 0.06 * u[25],
            eye_height=0.38 + 0.22 * u[26],
            eye_tilt=-0.06 + 0.2 * u[27],
            eye_spacing=0.36 + 0.08 * u[28],
            eye_colour=_jitter(_pick(_EYE_COLOURS, u[29]), u[30], 0.12),
            brow_thickness=0.035 + 0.05 * u[31],
            brow_arch=float(u[32]),
            brow_colour=brow_base,
            nose_size=0.8 + 0.45 * u[33],
            nose_width=0.8 + 0.5 * u[34],
            lip_colour=lip_colour,
            lip_thickness=0.7 + 0.65 * u[35],
            mouth_width=0.30 + 0.10 * u[36],
            ear_size=0.85 + 0.3 * u[37],
            glasses=_pick(GLASSES[1:], u[38] / 0.3) if u[38] < 0.3 else "none",
            glasses_colour=_pick(((30, 30, 34), (120, 70, 40), (170, 170, 176), (140, 30, 40)), u[39]),
            earrings=bool(u[40] < 0.25),
            earring_colour=_pick(_METALS, u[41]),
            beard=beard,
            moustache=moustache,
            hat=_pick(HATS[1:], u[43]) if u[42] < 0.14 else "none",
            hat_colour=hat_colour,
            clothing_colour=clothing_colour,
            background_top=background_top,
            background_bottom=background_bottom,
        )
