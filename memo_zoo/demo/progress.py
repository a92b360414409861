"""The page's progress bar: frames done, the frame rate and the time left, while a video generates.

Generation reports its frames through its own progress bar (``memo_zoo.progress``, a tqdm bar
with unit ``frame``), whatever calls it. The page's ``gr.Progress(track_tqdm=True)`` mirrors that
bar (Gradio's documented way to follow tqdm inside an event), which shows "12 / 50 frame". Gradio
does not show a bar's rate or time left, so ``FrameRate`` looks at the mirrored bar twice a second
and writes them into its description: "generating: 3.4 frames/s, about 11 s left". It runs in a
thread of its own, started with the event's context (Gradio finds the event through context
variables), and stops when the generation returns.
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

FRAME_UNIT = "frame"  # the unit of generation's bar (memo_zoo.generate.pipeline)


def describe(done: int, total: int, rate: float | None) -> str:
    """'generating: 3.4 frames/s, about 11 s left' (or 'generating' before the first frame)."""
    if rate is None or rate <= 0 or done <= 0:
        return "generating"
    left = max(0.0, (total - done) / rate)
    return f"generating: {rate:.1f} frames/s, about {_duration(left)} left"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


class FrameRate:
    """Context manager: while open, keeps the description of the page's frame bar up to date."""

    def __init__(self, progress: Any, interval: float = 0.5):
        self.progress, self.interval = progress, interval
        self._stop = threading.Event()
        self._first: tuple[float, int] | None = None  # (time, frames) when frames were first seen
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "FrameRate":
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="demo-frame-rate", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        iterables = list(getattr(self.progress, "iterables", ()))
        bar = next((it for it in reversed(iterables) if getattr(it, "unit", None) == FRAME_UNIT
                    and getattr(it, "length", None) and getattr(it, "index", None) is not None), None)
        if bar is None:
            return
        now, done = time.monotonic(), int(bar.index)
        if self._first is None:
            self._first = (now, done)  # the rate counts from here: model setup is not in it
            rate = None
        else:
            started, before = self._first
            rate = (done - before) / (now - started) if now > started and done > before else None
        bar.desc = describe(done, int(bar.length), rate)
        if iterables and iterables[-1] is bar:
            self.progress.update(0)  # sends the new description now, not at the next frame
