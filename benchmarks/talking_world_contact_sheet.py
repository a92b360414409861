"""Contact sheet of the talking_world face renderer, for looking at the synthetic world (issue 4).

Rows are identities (seeds), optionally plus the real-photo tier; columns are the states a
reviewer wants to check at a glance: the seven basic expressions of spec E4 (``others`` is
optional), an open mouth, a blink and a head turn. Writes one PNG.

    python benchmarks/talking_world_contact_sheet.py --out /tmp/talking_world_faces.png
    python benchmarks/talking_world_contact_sheet.py --seeds 10 11 12 --size 64 --others --photo
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from memo_zoo_plugins.datasets.talking_world.face import FaceState, render
from memo_zoo_plugins.datasets.talking_world.identity import FaceIdentity


def columns(with_others: bool) -> list[tuple[str, FaceState]]:
    basic = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted")
    cols = [(e, FaceState(emotion=e)) for e in basic]
    if with_others:
        cols.append(("others", FaceState(emotion="others")))
    cols += [
        ("mouth open", FaceState(mouth_open=0.85)),
        ("blink", FaceState(blink=1.0)),
        ("yaw", FaceState(yaw=0.45, pitch=0.1, roll=0.08)),
    ]
    return cols


def _label(sheet: np.ndarray, text: str, x: int, width: int) -> None:
    """Column name, shrunk (then cut) to fit its column so narrow sheets stay readable."""
    scale = 0.4
    while scale > 0.25 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width - 4:
        scale -= 0.025
    while len(text) > 1 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width - 4:
        text = text[:-1]
    cv2.putText(sheet, text, (x + 2, 13), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def contact_sheet(seeds: list[int], size: int, with_others: bool = False, photo: bool = False) -> np.ndarray:
    """The grid as an RGB uint8 image, with a header row of column names.

    ``photo`` adds a last row with the real-photo tier (needs scikit-image).
    """
    cols = columns(with_others)
    renderers = [lambda state, ident=FaceIdentity.from_seed(seed): render(ident, state, size) for seed in seeds]
    if photo:
        from memo_zoo_plugins.datasets.talking_world.real_photo import render_photo

        renderers.append(lambda state: render_photo(state, size))
    header = 18
    sheet = np.full((header + len(renderers) * size, len(cols) * size, 3), 255, np.uint8)
    for j, (name, _) in enumerate(cols):
        _label(sheet, name, j * size, size)
    for i, draw in enumerate(renderers):
        for j, (_, state) in enumerate(cols):
            sheet[header + i * size: header + (i + 1) * size, j * size:(j + 1) * size] = draw(state)
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--others", action="store_true", help="add a column for the 'others' label")
    parser.add_argument("--photo", action="store_true", help="add a row for the real-photo tier (scikit-image)")
    parser.add_argument("--out", default="/tmp/talking_world_faces.png")
    args = parser.parse_args()
    sheet = contact_sheet(args.seeds, args.size, args.others, args.photo)
    cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
