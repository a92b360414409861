"""Real-photo tier of talking_world (issue 4): a real portrait animated by landmark warps.

The cartoon renderer (:mod:`.face`) is exact but far from the photographs MEMO is trained on. This
tier animates one real, public-domain portrait that a pip package ships: scikit-image's
``skimage.data.astronaut()`` (Eileen Collins, NASA, public domain). It takes the same
:class:`~.face.FaceState` as the cartoon renderer, so a generator can switch tiers per clip.

How a frame is made (all in the 512 x 512 photo's pixel units, landmarks in :data:`LANDMARKS`,
found by hand on that image):

- a dense backward warp (one ``cv2.remap``) sums smooth local displacements: Gaussian-weighted
  shifts at the brows (raise, squeeze), vertical stretches about each eye (widen / narrow), mouth
  corner lifts, mouth narrowing / spreading, an upper-lip raise, a nose wrinkle, and, for the
  mouth opening, a jaw field that moves everything below the lip split line (lower lip, chin)
  down: a lens-shaped gap opens between the upper teeth and the lower lip, widest at the centre
  and closed at the corners;
- the gap is filled with a dark inner mouth, a tongue and lower-teeth hint when wide;
- blinks draw a skin-coloured upper lid (colour sampled from the photo's lid) down over the eye;
- head pose: features shift towards the turn / nod (a 2.5D hint), and the whole head rolls about
  the neck.

The portrait smiles at rest (upper teeth visible), so the emotion warps are relative to that smile:
``neutral`` is the photo as taken. Requires scikit-image (``pip install scikit-image``); the rest of
talking_world does not.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from .face import FaceState, expression_of, _check_size

# Hand-placed landmarks of skimage.data.astronaut() (x, y) in its 512 x 512 pixels.
LANDMARKS: dict[str, tuple[float, float]] = {
    "left_eye": (203.0, 101.5), "right_eye": (246.0, 102.5),
    "left_eye_outer": (193.0, 101.3), "left_eye_inner": (211.0, 102.7),
    "right_eye_inner": (236.0, 102.7), "right_eye_outer": (255.5, 101.3),
    "left_brow_inner": (211.5, 91.3), "left_brow_outer": (192.5, 91.5),
    "right_brow_inner": (236.0, 92.0), "right_brow_outer": (258.0, 93.4),
    "nose_tip": (223.0, 128.5),
    "mouth_left": (203.0, 140.3), "mouth_right": (244.3, 141.3),
    "lip_split": (224.0, 148.4),        # lower edge of the upper teeth, mouth centre
    "upper_lip": (224.0, 138.5), "lower_lip": (224.0, 152.5),
    "chin": (224.5, 177.5),
}
# The output is this square of the photo (head and shoulders), scaled to the requested size.
CROP_ORIGIN = (134.0, 14.0)
CROP_SIZE = 180.0
_NECK = (224.0, 200.0)        # roll pivot
_MAX_GAP = 16.0               # jaw drop at mouth_open = 1, photo pixels
_EYE_UPPER_Y, _EYE_LOWER_Y = 97.3, 104.3


def portrait() -> np.ndarray:
    """The portrait, (512, 512, 3) uint8 RGB, from scikit-image's bundled data."""
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("talking_world's real-photo tier needs scikit-image: pip install scikit-image") from err
    return np.ascontiguousarray(data.astronaut()[..., :3])


@lru_cache(maxsize=8)
def _source(size: int) -> tuple[np.ndarray, tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """The whole photo downscaled so the crop becomes ``size`` pixels (INTER_AREA: no aliasing),
    plus the lid colours sampled above each eye."""
    img = portrait()
    s = size / CROP_SIZE
    n = max(1, int(round(512 * s)))
    small = cv2.resize(img, (n, n), interpolation=cv2.INTER_AREA)
    small.setflags(write=False)
    lids = tuple(tuple(int(v * 0.97) for v in img[94:97, int(x) - 4:int(x) + 4].reshape(-1, 3).mean(axis=0))
                 for x in (LANDMARKS["left_eye"][0], LANDMARKS["right_eye"][0]))
    return small, lids  # type: ignore[return-value]


def _blob(x, y, c, sx: float, sy: float):
    return np.exp(-0.5 * (((x - c[0]) / sx) ** 2 + ((y - c[1]) / sy) ** 2))


def _split_y(x):
    """The lip split line (upper-teeth edge) between the corners: a parabola through the three
    landmarks, in photo pixels."""
    (xl, yl), (xr, yr) = LANDMARKS["mouth_left"], LANDMARKS["mouth_right"]
    cx, cy = LANDMARKS["lip_split"]
    hw = 0.5 * (xr - xl)
    base = yl + (yr - yl) * (x - xl) / (xr - xl)
    depth = cy - (yl + (yr - yl) * (cx - xl) / (xr - xl))
    return base + depth * np.clip(1.0 - ((x - cx) / hw) ** 2, 0.0, None)


class _Warp:
    """Forward displacement field of one state, evaluated at any points (photo pixel units)."""

    def __init__(self, st: FaceState):
        ex = expression_of(st)
        self.ex = ex
        opening = 1.0 - (1.0 - st.mouth_open) * (1.0 - min(ex.jaw, 1.0))
        self.gap = _MAX_GAP * opening * (1.0 - 0.35 * ex.press)
        rnd = max(st.mouth_round, ex.round)
        self.fw = (0.82 + 0.36 * st.mouth_width) * (1.0 - 0.22 * rnd) * (1.0 + 0.12 * ex.stretch)
        self.round = rnd
        self.yaw, self.pitch = st.yaw, st.pitch
        self.eye_scale = 1.0 + 0.7 * ex.eye_wide - 0.3 * min(ex.lower_lid, 1.0)

    def jaw(self, x, y):
        """Downward shift of the jaw at (x, y), for points below the lip split."""
        cx = LANDMARKS["lip_split"][0]
        hw = 0.5 * (LANDMARKS["mouth_right"][0] - LANDMARKS["mouth_left"][0]) * self.fw
        # Near the lips the drop is lens-shaped (0 at the corners; rounder lips open rounder);
        # further down the chin moves as a block, fading out into the neck.
        lip = np.clip(1.0 - ((x - cx) / hw) ** 2, 0.0, None) ** (0.8 - 0.3 * self.round)
        chin = np.exp(-0.5 * ((x - cx) / (1.3 * hw)) ** 2)
        t = np.clip((y - LANDMARKS["lip_split"][1]) / 8.0, 0.0, 1.0)
        fade = np.clip(1.0 - (y - LANDMARKS["chin"][1]) / 25.0, 0.0, 1.0)
        return self.gap * (lip + (chin - lip) * t) * fade

    def __call__(self, x, y, below_split=None):
        ex, L = self.ex, LANDMARKS
        dx = np.zeros_like(x)
        dy = np.zeros_like(y)
        mouth_c = (L["lip_split"][0], 145.0)
        dx += (self.fw - 1.0) * (x - mouth_c[0]) * _blob(x, y, mouth_c, 16.0, 9.0)
        for key, extra in (("mouth_left", 0.0), ("mouth_right", ex.corner_right)):
            dy -= (ex.corner + extra) * 5.0 * _blob(x, y, L[key], 6.0, 5.0)
        dy -= ex.upper_lip * 4.0 * _blob(x, y, L["upper_lip"], 10.0, 4.0)
        for side, extra in (("left", ex.brow_left), ("right", 0.0)):
            inner, outer = L[f"{side}_brow_inner"], L[f"{side}_brow_outer"]
            b_in = _blob(x, y, inner, 5.0, 4.0)
            dy -= (ex.brow_inner + extra) * 5.5 * b_in
            dy -= (ex.brow_outer + extra) * 5.0 * _blob(x, y, outer, 6.0, 4.0)
            dx += (1.0 if side == "left" else -1.0) * ex.brow_squeeze * 4.0 * b_in
            eye = L[f"{side}_eye"]
            dy += (self.eye_scale - 1.0) * (y - eye[1]) * _blob(x, y, eye, 9.0, 6.0)
        dy -= ex.nose_wrinkle * 2.0 * _blob(x, y, L["nose_tip"], 6.0, 5.0)
        for c in ((205.0, 124.0), (243.0, 124.0)):
            dy -= ex.cheek * 2.0 * _blob(x, y, c, 7.0, 6.0)
        face = _blob(x, y, L["nose_tip"], 30.0, 35.0)
        dx += 9.0 * math.sin(self.yaw) * face
        dy += 7.0 * math.sin(self.pitch) * face
        if self.gap > 0:
            below = (y > _split_y(x)) if below_split is None else below_split
            dy += np.where(below, self.jaw(x, y), 0.0)
        return dx, dy


def _pose(st: FaceState, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Forward affine (2x3, crop output pixels -> output pixels) of the roll + head shift."""
    s = size / CROP_SIZE
    pivot = np.array([(_NECK[0] - CROP_ORIGIN[0]) * s, (_NECK[1] - CROP_ORIGIN[1]) * s])
    cr, sr = math.cos(st.roll), math.sin(st.roll)
    rot = np.array([[cr, -sr], [sr, cr]])
    shift = np.array([10.0 * math.sin(st.yaw), 6.0 * math.sin(st.pitch)]) * s
    fwd = np.hstack([rot, (pivot - rot @ pivot + shift)[:, None]])
    inv_rot = rot.T
    inv = np.hstack([inv_rot, (-inv_rot @ fwd[:, 2])[:, None]])
    return fwd, inv


def _to_out(pts_photo: np.ndarray, warp: _Warp, fwd: np.ndarray, s: float, below=None) -> np.ndarray:
    """Photo-pixel points -> output pixels, through the local warp and the pose."""
    x, y = pts_photo[:, 0], pts_photo[:, 1]
    dx, dy = warp(x, y, below)
    q = np.stack([(x + dx - CROP_ORIGIN[0]) * s, (y + dy - CROP_ORIGIN[1]) * s], axis=1)
    return q @ fwd[:, :2].T + fwd[:, 2]


def _poly(img: np.ndarray, pts: np.ndarray, colour) -> None:
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], colour, cv2.LINE_AA, 4)


def _feathered(img: np.ndarray, pts: np.ndarray, colour, sigma: float) -> None:
    """Fill a polygon with soft edges (a blurred coverage mask), so a painted patch such as an
    eyelid blends into the photo's shading instead of showing a cut-out border."""
    pad = int(math.ceil(3 * sigma)) + 2
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(mask, [np.round((pts - [x0, y0]) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    if sigma > 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    roi = img[y0:y1, x0:x1].astype(np.float32)
    roi += (np.asarray(colour, np.float32) - roi) * mask[..., None]
    img[y0:y1, x0:x1] = np.clip(np.round(roi), 0, 255).astype(np.uint8)


def render_photo(state: FaceState, size: int) -> np.ndarray:
    """One frame of the real portrait in ``state``: ``(size, size, 3)`` uint8 RGB."""
    size = _check_size(size)
    src, lids = _source(size)
    s = size / CROP_SIZE
    warp = _Warp(state)
    fwd, inv = _pose(state, size)

    # Backward map: output pixel -> (undo pose) crop pixel -> photo pixel -> minus local warp.
    # Using the displacement at the output position is the usual first-order inverse; the fields
    # are smooth and a few pixels large, so the error is sub-pixel.
    gy, gx = np.mgrid[0:size, 0:size].astype(np.float32)
    qx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
    qy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    px, py = qx / s + CROP_ORIGIN[0], qy / s + CROP_ORIGIN[1]
    dx, dy = warp(px, py)
    map_x = ((px - dx) * s).astype(np.float32)
    map_y = ((py - dy) * s).astype(np.float32)
    out = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    # Inner mouth: the gap between the (fixed) split line and the dropped lower lip.
    if warp.gap * s > 0.3:
        L = LANDMARKS
        xs = np.linspace(L["mouth_left"][0], L["mouth_right"][0], 25)
        top = np.stack([xs, _split_y(xs)], axis=1)
        above = np.zeros(len(xs), bool)
        top_out = _to_out(top, warp, fwd, s, above)
        bot_out = _to_out(top, warp, fwd, s, ~above)
        _poly(out, np.vstack([top_out, bot_out[::-1]]), (52, 18, 22))
        depth = bot_out[:, 1] - top_out[:, 1]
        mid = slice(5, -5)
        if warp.gap > 5.0:
            h = np.minimum(0.4 * depth[mid], 5.0 * s)[:, None] * np.sqrt(1 - np.linspace(-0.9, 0.9, 15) ** 2)[:, None]
            _poly(out, np.vstack([bot_out[mid], (bot_out[mid] - np.hstack([0 * h, h]))[::-1]]), (160, 70, 78))
        if warp.gap > 8.0:
            h = np.minimum(0.18 * depth[mid], 2.5 * s)[:, None]
            _poly(out, np.vstack([bot_out[mid], (bot_out[mid] - np.hstack([0 * h, h]))[::-1]]), (215, 208, 196))

    # Blink: a lid of the photo's own lid colour slides down over each eye.
    if state.blink > 0.02:
        for side, colour in zip(("left", "right"), lids):
            xo, xi = LANDMARKS[f"{side}_eye_outer"][0], LANDMARKS[f"{side}_eye_inner"][0]
            xs = np.linspace(min(xo, xi) - 1.0, max(xo, xi) + 1.0, 13)
            cx, hw = 0.5 * (xs[0] + xs[-1]), 0.5 * (xs[-1] - xs[0])
            bump = np.clip(1.0 - ((xs - cx) / hw) ** 2, 0.0, None)
            corner_y = LANDMARKS[f"{side}_eye"][1] + 0.5
            upper = corner_y - (corner_y - _EYE_UPPER_Y + 1.0) * bump
            lower = corner_y + (_EYE_LOWER_Y - corner_y + 0.5) * bump
            edge = upper + (lower - upper) * state.blink
            lid = np.vstack([np.stack([xs, upper - 0.5], axis=1), np.stack([xs, edge], axis=1)[::-1]])
            _feathered(out, _to_out(lid, warp, fwd, s), colour, 0.6 * s)
            lash = _to_out(np.stack([xs, edge], axis=1), warp, fwd, s)
            cv2.polylines(out, [np.round(lash * 16).astype(np.int32)], False, (60, 40, 35),
                          max(1, int(round(0.9 * s))), cv2.LINE_AA, 4)
    return out


def photo_landmarks(state: FaceState, size: int) -> dict[str, np.ndarray]:
    """:data:`LANDMARKS` as :func:`render_photo` places them for ``state``, in output pixels."""
    size = _check_size(size)
    s = size / CROP_SIZE
    warp = _Warp(state)
    fwd, _ = _pose(state, size)
    names = list(LANDMARKS)
    pts = np.array([LANDMARKS[k] for k in names])
    below = np.array([k in ("lower_lip", "chin") for k in names])
    out = _to_out(pts, warp, fwd, s, below)
    return {k: out[i] for i, k in enumerate(names)}
