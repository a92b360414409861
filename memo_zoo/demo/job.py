"""One generation of the demo: the page's fields -> checked options -> the MP4 and its timeline.

Gradio-free, so it can be tested and reused without a server: the page (``memo_zoo.demo.app``)
calls ``run_job`` from its queue, which runs one job at a time per device (a second visitor waits
and sees their place). Generation is ``memo_zoo.generate.pipeline.generate_video`` itself, with its
frame bar on: the page follows that bar (``memo_zoo.demo.progress``).

Errors a visitor can fix come out as ``MemoZooError`` with a message for the page: the checks of
``memo_zoo.demo.checks``, generation's own (unreadable or silent audio, a size the network cannot
take) and invalid options. Generation's warnings (no face found, little speech in the audio, no
emotion detector) are collected and returned, for the page to show beside the video.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from pydantic import ValidationError

from memo_zoo.demo.checks import check_audio_upload, check_portrait, video_seconds
from memo_zoo.demo.model_source import DemoModel
from memo_zoo.demo.options import DemoOptions
from memo_zoo.demo.timeline import draw_timeline, schedule_table
from memo_zoo.errors import MemoZooError

VIDEO_NAME, TIMELINE_NAME = "talking.mp4", "emotion_timeline.png"


@dataclass
class JobRequest:
    """What the page asks for (already parsed: ``checks.emotion_option`` made ``emotion``)."""

    image: Path | str | None
    audio: Path | str | None
    emotion: Union[None, str, list[dict]] = None
    cfg_scale: float | None = None
    steps: int | None = None
    seconds: float | None = None
    seed: int | None = None


@dataclass
class JobResult:
    video: Path
    timeline: Path
    frames: int
    video_fps: float
    audio_seconds: float
    seconds: float
    schedule: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    cut_to: float | None = None  # the --max-seconds the audio was cut to, when it was longer

    def summary(self) -> str:
        """Markdown for the page's status box."""
        lines = [f"**Done**: {self.frames} frames at {self.video_fps:g} fps ({self.audio_seconds:.2f} s of audio) in "
                 f"{self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.1f} frames/s)."]
        if self.cut_to is not None:
            lines.append(f"The audio was cut to its first {self.cut_to:g} s (this server's --max-seconds).")
        lines += [f"- warning: {message}" for message in self.warnings]
        lines += ["", schedule_table(self.schedule)]
        return "\n".join(lines)


def run_job(model: DemoModel, options: DemoOptions, request: JobRequest, folder: Path) -> JobResult:
    """Generate ``request`` into ``folder`` (a fresh folder of the workspace)."""
    from memo_zoo.generate.config import GenerateConfig
    from memo_zoo.generate.pipeline import generate_video
    from memo_zoo.generate.warning import GenerationWarning

    image = check_portrait(request.image, options.min_image_px, options.max_image_megapixels)
    audio = check_audio_upload(request.audio)
    seconds = video_seconds(request.seconds, options.max_seconds)
    document: dict[str, Any] = {**model.generation, "image": image, "audio": audio, "out": folder / VIDEO_NAME,
                                "emotion": request.emotion, "max_seconds": seconds, "seed": request.seed,
                                "device": options.device}
    if request.cfg_scale is not None:
        document["cfg"] = {**document.get("cfg", {}), "scale": float(request.cfg_scale)}
    try:
        config = GenerateConfig.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in error.errors())
        raise MemoZooError(f"invalid generation options: {problems}") from None
    if request.steps is not None and not 1 <= int(request.steps) <= 200:
        raise MemoZooError(f"steps {request.steps}: give between 1 and 200 sampler steps")
    generator = model.with_steps(request.steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenerationWarning)
        result = generate_video(generator, config, progress=True)
    messages = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, GenerationWarning)))
    timeline = draw_timeline(result.emotion_schedule, model.labels, folder / TIMELINE_NAME)
    # Cut when the track is longer than what was used (one frame's worth of slack for rounding).
    cut = seconds if _audio_seconds(audio) > seconds + 1 / max(result.video_fps, 1.0) else None
    return JobResult(video=result.path, timeline=timeline, frames=result.frames, video_fps=result.video_fps,
                     audio_seconds=result.audio_seconds, seconds=result.seconds, schedule=result.emotion_schedule,
                     warnings=messages, cut_to=cut)


def _audio_seconds(path: Path) -> float:
    from memo_zoo.data.media import probe

    try:
        return float(probe(path).duration)
    except MemoZooError:
        return 0.0  # generation read it, so this cannot fail in practice; then nothing is said about a cut
