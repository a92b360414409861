"""Progress bars for long work: rate and ETA on stderr, quiet when MEMO_ZOO_PROGRESS=0."""

from __future__ import annotations

import os
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    disabled = os.environ.get("MEMO_ZOO_PROGRESS", "1") == "0"
    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=disabled, dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")
