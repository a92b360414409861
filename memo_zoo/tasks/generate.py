"""``task: {kind: generate, image: ..., audio: ..., ...}``: generate a talking video under MLflow (spec §6).

The options are ``memo_zoo.generate.config.GenerateConfig``; the work is
``memo_zoo.generate.loading`` and ``memo_zoo.generate.pipeline``. Relative paths (image, audio,
checkpoint, out) are taken from the run's working directory. The run records the video as an
artifact (``video/<name>.mp4``), the speed (``seconds_per_frame``, ``frames_per_second``), the
sizes (``frames``, ``clips``, ``audio_seconds``) and the emotion used for each clip
(``emotion_schedule.json``, spec E5).
"""

from __future__ import annotations

from pathlib import Path

from memo_zoo.generate.config import GenerateConfig, check_output
from memo_zoo.runner import RunContext

__all__ = ["GenerateConfig", "GenerateTask", "build"]


def _under(workdir: Path, path: Path | None) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    return path if path.is_absolute() else workdir / path


class GenerateTask:
    def __init__(self, config: GenerateConfig):
        self.config = config
        self.result = None

    def _resolved(self, workdir: Path) -> GenerateConfig:
        return self.config.model_copy(update={
            "image": _under(workdir, self.config.image), "audio": _under(workdir, self.config.audio),
            "out": _under(workdir, self.config.out), "checkpoint": _under(workdir, self.config.checkpoint)})

    def preflight(self, context: RunContext) -> None:
        """Before any MLflow run: an ``out`` that is an input, a folder or a container that
        cannot hold the video is refused at once (``check_output``)."""
        check_output(self._resolved(Path(context.workdir)))

    def run(self, context: RunContext) -> None:
        # Heavy imports (torch models, PyAV) only when a generation actually runs.
        from memo_zoo.generate.loading import load_generator_model
        from memo_zoo.generate.pipeline import generate_video

        config = self._resolved(Path(context.workdir))
        model = load_generator_model(config.checkpoint, context.recipe, context.registry)
        result = generate_video(model, config, progress=True)
        self.result = result
        run = context.run
        if run is None:  # a process without a tracking run (non-main rank)
            return
        run.log_metrics({"seconds_per_frame": result.seconds_per_frame, "frames_per_second": result.fps_rate,
                         "frames": result.frames, "clips": result.clips, "audio_seconds": result.audio_seconds,
                         "wall_seconds": result.seconds, "network_evaluations": result.network_evaluations,
                         "evaluations_per_frame": result.evaluations_per_frame})
        run.set_tags({"memo_zoo.generate.out": str(result.path), "memo_zoo.generate.video_fps": result.video_fps,
                      "memo_zoo.generate.checkpoint": str(config.checkpoint) if config.checkpoint else "random"})
        run.log_dict(result.emotion_schedule, "emotion_schedule.json")
        run.log_artifact(result.path, "video")


def build(config: GenerateConfig) -> GenerateTask:
    return GenerateTask(config)
