"""What the page's inputs must be before a generation starts, and how its fields become options.

Every refusal is a ``MemoZooError`` whose message the page shows as it is (``gr.Error``): it names
the input and the value, and says what would be accepted. Checks that generation itself makes
(unreadable, empty or silent audio; a face not found, which only warns) are not repeated here:
``memo_zoo.generate.inputs`` raises or warns, and the page shows that message the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Union

from memo_zoo.errors import MemoZooError

DETECTED, ONE_LABEL, SCHEDULE = "detected per segment", "one label", "schedule"
EMOTION_MODES = (DETECTED, ONE_LABEL, SCHEDULE)
# One schedule line: START END LABEL, separated by spaces, commas or a dash between the times.
SCHEDULE_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:,|-|\s)\s*(\d+(?:\.\d+)?)\s*[,\s]\s*([A-Za-z_]+)\s*$")


def check_portrait(path: str | Path | None, min_px: int, max_megapixels: float) -> Path:
    """The uploaded portrait's path, refused when missing, not an image, too small or too large.

    Only the header is read (``Image.open`` is lazy): an oversized image is refused before its
    pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    if path is None:
        raise MemoZooError("upload a portrait first (a photo with one face, looking at the camera)")
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise MemoZooError(f"the portrait {path.name} cannot be read as an image ({error})") from None
    if min(width, height) < min_px:
        raise MemoZooError(f"the portrait {path.name} is {width}x{height} px: too small, its shorter side must be "
                           f"at least {min_px} px (upload a larger photo)")
    if width * height > max_megapixels * 1e6:
        raise MemoZooError(f"the portrait {path.name} is {width}x{height} px ({width * height / 1e6:.0f} MP): "
                           f"larger than {max_megapixels:g} MP; upload a smaller copy")
    return path


def check_audio_upload(path: str | Path | None) -> Path:
    """The uploaded or recorded audio's path (its content is checked by generation)."""
    if path is None:
        raise MemoZooError("upload or record the audio first (speech drives the lips)")
    return Path(path)


def video_seconds(requested: float | None, limit: float) -> float:
    """The seconds of audio to use: what the page asked, at most the server's ``--max-seconds``
    (the page's slider stops there too, but a request may come from elsewhere)."""
    if requested is None or requested <= 0:
        return limit
    return min(float(requested), limit)


def emotion_option(mode: str, label: str | None, schedule: str | None,
                   labels: tuple[str, ...]) -> Union[None, str, list[dict]]:
    """``GenerateConfig.emotion`` from the page's emotion fields: None (detected per segment), one
    label, or a schedule of ``{start_s, end_s, label}`` segments."""
    known = (*labels, "none")
    if mode == DETECTED:
        return None
    if mode == ONE_LABEL:
        if not label or label not in known:
            raise MemoZooError(f"emotion label {label!r} is not one of: {', '.join(known)}")
        return label
    if mode == SCHEDULE:
        return parse_schedule(schedule or "", known)
    raise MemoZooError(f"emotion mode {mode!r} is not one of: {', '.join(EMOTION_MODES)}")


def parse_schedule(text: str, known: tuple[str, ...]) -> list[dict]:
    """Lines ``START END LABEL`` (seconds; e.g. ``0 2.5 happy``) into schedule segments."""
    segments = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = SCHEDULE_LINE.match(line)
        if match is None:
            raise MemoZooError(f"emotion schedule line {number} {line.strip()!r}: expected START END LABEL in "
                               "seconds, e.g. 0 2.5 happy")
        start, end, label = float(match[1]), float(match[2]), match[3]
        if end <= start:
            raise MemoZooError(f"emotion schedule line {number}: the end ({end:g} s) must be after the start "
                               f"({start:g} s)")
        if label not in known:
            raise MemoZooError(f"emotion schedule line {number}: {label!r} is not one of: {', '.join(known)}")
        segments.append({"start_s": start, "end_s": end, "label": label})
    if not segments:
        raise MemoZooError("the emotion schedule is empty: write one segment a line, START END LABEL, e.g. "
                           "0 2.5 happy")
    return segments
