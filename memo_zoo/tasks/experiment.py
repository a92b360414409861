"""``task: {kind: experiment}``: train -> generate held-out videos -> evaluate, one MLflow run each.

The main job of memo-zoo (issue 7): an ablation recipe (spec §9) is this task plus a ``sweep:``,
so ``memo-zoo run recipes/ablate_memory.yaml`` trains every variant with the same budget and seed,
generates the same long held-out videos with each, measures them with the recipe's ``metrics``
(the standard suite of spec §8 where weights are present, and the world metrics that need none)
and, once every variant is done, writes the comparison report on the parent run
(``memo_zoo.eval.report``; ``memo-zoo report RUN_ID`` rebuilds it).

Resumable and shared: the checkpoints live in ``<out_dir>/train-<hash>`` where the hash covers
everything that changes training (model, data, seed, task.train), so a variant of one recipe that
trains exactly as another recipe (an ablation's MEMO variant and ``experiment_tiny``) reuses its
training; the videos are in ``<out_dir>/<recipe>/videos-<hash>`` (the training hash + generation
+ held-out options + detector + sampler).
Every metric's networks are loaded once before anything is trained (``_check_metrics``), so that
a corrupt or mismatched weight file stops the run in seconds, naming the metric and the file,
rather than after a variant's training and generation; a metric whose file is missing is still
skipped by the evaluation, as before.
With ``train_vae`` set, the recipe's ``sd_vae`` autoencoder is trained first when its folder does
not exist yet (the ``train_vae`` task, ``memo_zoo.tasks.stages``); every variant then reads the
same folder.
When the training starts with a spatial phase (stage 1, L2), that phase is trained once in
``<out_dir>/stage1-<hash>`` and every variant trains its later phases from it
(``share_stage1``; ``memo_zoo.tasks.shared_stage1`` says why that is sound).
A re-run after an interruption resumes the training from its last checkpoint and generates only
the videos not finished; variants that differ only in generation (e.g. the CFG ablation) train
once. A video counts as finished when its ``<clip>.json`` record exists (written after the MP4,
which is itself written atomically).
With ``task.seeds`` > 1 the runner runs each variant once per seed (``memo_zoo.runner.replicates``:
the recipe's ``seed`` set to seed, seed + 1, ...), so this task sees one seed per run as always and
its keys, which hold the seed, give each seed its own training, stage 1 and videos; the report on
the parent gives each variant's mean and spread over its seeds (``memo_zoo.eval.report``).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel

from memo_zoo.atomic import write_text_atomically
from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.runner import RunContext
from memo_zoo.tasks.experiment_config import ExperimentConfig
from memo_zoo.tasks.held_out import HeldOutClip, select_clips, truth_arrays, truth_schedule, write_portrait
from memo_zoo.tasks.shared_stage1 import split_stage1, stage1_key_document, train_key_document
from memo_zoo.tasks.stages import AUTOENCODER, EMOTION_DETECTOR, AutoencoderTraining, stage_task
from memo_zoo.tracking.prefixed import PrefixedRun
from memo_zoo.train.config import TrainConfig

__all__ = ["ExperimentConfig", "ExperimentTask", "build"]

RECORD_SUFFIX = ".json"


def fingerprint(document: Any) -> str:
    """A short stable hash of a JSON-able document (the key of a reusable folder)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def shared_stage1(config: ExperimentConfig) -> tuple[TrainConfig, TrainConfig] | None:
    """(stage 1, the rest) when this experiment shares its stage 1 between variants, else None."""
    return split_stage1(config.train) if config.share_stage1 else None


def training_key(recipe: BaseModel, config: ExperimentConfig) -> str:
    """What changes the trained weights: the network's parts, the data, the seed and task.train."""
    document = recipe.model_dump(mode="json")
    train = train_key_document(config.train)
    key = {"model": document["model"], "data": document["data"], "seed": document["seed"], "train": train}
    if config.train_vae is not None:
        # The autoencoder's options change every latent; added only when set so older keys stay valid.
        key["train_vae"] = config.train_vae.key_document()
    if shared_stage1(config) is not None:
        # Later phases restart their step count from a shared stage 1: not the weights of one unbroken run.
        key["stage1"] = "shared"
    return fingerprint(key)


def stage1_key(recipe: BaseModel, config: ExperimentConfig, stage1: TrainConfig) -> str:
    return fingerprint(stage1_key_document(recipe, stage1, config.train_vae))


def generation_key(recipe: BaseModel, config: ExperimentConfig, train_key: str) -> str:
    document = recipe.model_dump(mode="json")
    generation, scheduler = steps_as_keyed(config.generation.model_dump(mode="json"), document["scheduler"],
                                           type(recipe.scheduler))
    return fingerprint({"train": train_key, "generation": generation,
                        "held_out": config.held_out.model_dump(mode="json"), "seed": document["seed"],
                        "emotion_detector": document["emotion_detector"], "scheduler": scheduler})


def override_key(recipe: BaseModel, config: ExperimentConfig, train_key: str) -> str:
    """Names the override study's folder: the weights, how it generates, and what it requests."""
    document = recipe.model_dump(mode="json")
    return fingerprint({"train": train_key, "generation": config.generation.model_dump(mode="json"),
                        "override": config.override.model_dump(mode="json"), "seed": document["seed"],
                        "scheduler": document["scheduler"], "held_out_split": config.held_out.split})


def steps_as_keyed(generation: dict[str, Any], scheduler: dict[str, Any],
                   scheduler_type: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The generation and scheduler parts of a video key as they were written when the step count
    had two homes (``task.generation.steps`` over ``scheduler.steps``), so finished videos are reused.

    The count that ran now lives only in ``scheduler.steps``. Keys made before the move saw it as
    ``generation.steps`` (null when the task did not set it) and the scheduler's own count, which
    was nearly always the kind's default; so a count equal to that default keys as before with
    ``generation.steps`` null, and any other count keys as the old override of the default. (A recipe
    that wrote another count in ``scheduler.steps`` itself gets new keys once: it is regenerated.)
    """
    field = scheduler_type.model_fields.get("steps") if hasattr(scheduler_type, "model_fields") else None
    if field is None or "steps" not in scheduler:
        return {**generation, "steps": None}, scheduler
    default = field.default
    ran = scheduler["steps"]
    return {**generation, "steps": None if ran == default else ran}, {**scheduler, "steps": default}


def _copy_final_loss(run: Any, state: Any) -> None:
    """Log a reused training's final loss in this run, at the step it ended on.

    The comparison table's train_loss column reads each variant's own ``loss`` metric; without this
    a variant that reused another's training would show n/a beside the one that trained it. The
    value comes from the MLflow run that saved the checkpoint (``state.run_id``); a checkpoint made
    under another tracking store has no such run here and is skipped.
    """
    from mlflow.exceptions import MlflowException

    if not state.run_id:
        return
    try:
        trained = run.client.get_run(state.run_id)
    except MlflowException:
        return
    # A PrefixedRun (stage 1) logged its curve as "<prefix>loss" in the run that trained it.
    name = getattr(run, "prefix", "") + "loss"
    if name in trained.data.metrics:
        run.log_metrics({"loss": trained.data.metrics[name]}, step=state.step)


class ExperimentTask:
    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.evaluation = None
        self.expression_guidance = None  # E6's options with the classifier's resolved path (_expression_guide)

    # ---- one variant ---------------------------------------------------------------------------

    def run(self, context: RunContext) -> None:
        recipe, config, run = context.recipe, self.config, context.run
        if recipe.data.dataset is None:
            raise MemoZooError("task experiment needs data.dataset (the clips to train on and evaluate with)")
        self._check_metrics(context)
        root = _under(Path(context.workdir), config.out_dir) / recipe.name
        train_key = training_key(recipe, config)
        if config.train_vae is not None:
            training: AutoencoderTraining = stage_task(context, AUTOENCODER,
                                                       config.train_vae.for_samples(config.train.samples))
            training.ensure(context)
        from memo_zoo.train.checkpoint import latest_checkpoint

        train = config.train
        split = shared_stage1(config)
        if split is not None:
            stage1, rest = split
            stage1_dir = _under(Path(context.workdir), config.out_dir) / f"stage1-{stage1_key(recipe, config, stage1)}"
            # Its loss curve goes to this run as stage1.* (PrefixedRun), beside the variant's own.
            self._train(context, stage1, stage1_dir, PrefixedRun(run, "stage1"), "memo_zoo.experiment.stage1")
            train = rest.model_copy(update={"init_weights": latest_checkpoint(stage1_dir),
                                            "init_weights_scope": "spatial"})
        # Not under the recipe's folder: the key holds everything that makes the weights, not the name.
        default_dir = _under(Path(context.workdir), config.out_dir) / f"train-{train_key}"
        train_dir = default_dir if train.out_dir is None else _under(Path(context.workdir), train.out_dir)
        self._train(context, train, train_dir, run, "memo_zoo.experiment.training")
        video_dir = root / f"videos-{generation_key(recipe, config, train_key)}"
        run.set_tags({"memo_zoo.experiment.train_dir": str(train_dir),
                      "memo_zoo.experiment.video_dir": str(video_dir)})
        clips = select_clips(recipe.data.dataset, context.registry, config.held_out)
        self._detector(context)
        self._expression_guide(context)
        generated = self._generate(context, train_dir, video_dir, clips)
        self._evaluate(context, clips, generated)
        if config.override is not None:
            from memo_zoo.tasks.override import OverrideStudy

            OverrideStudy(self, context, train_dir, root / f"override-{override_key(recipe, config, train_key)}").run()
        if config.report and context.variant is None:
            from memo_zoo.eval.report import report_run

            report_run(run.client, run.id, root / "reports" / run.id, log_to=run)

    def preflight(self, context: RunContext) -> None:
        """Before any MLflow run and for every variant of a sweep: the metrics' weights load
        (``_check_metrics``), so that the last variant's broken file does not wait for the first
        variant's training."""
        self._check_metrics(context)
        self._check_override(context)

    def _check_override(self, context: RunContext) -> None:
        """The override study reads expression with a metric the recipe lists: say so before training."""
        override = self.config.override
        listed = [config.kind for config in context.recipe.metrics]
        if override is not None and override.metrics[0] not in listed:
            raise MemoZooError(f"task.override.metrics: the recipe's metrics list no {override.metrics[0]!r}; the "
                               f"override study reads each frame's expression with it (listed: "
                               f"{', '.join(listed) or 'none'}; checked before training: nothing was run)")

    def _metrics(self, context: RunContext) -> dict[str, Any]:
        """The recipe's metrics, built (nothing loaded yet), by name; a kind listed twice gets a suffix."""
        metrics: dict[str, Any] = {}
        for config in context.recipe.metrics:
            name = config.kind if config.kind not in metrics else f"{config.kind}.{len(metrics)}"
            metrics[name] = context.build("metric", config)
        return metrics

    def _check_metrics(self, context: RunContext) -> None:
        """Load every metric's networks now, before any training (module docstring).

        A missing file is left to the evaluation, which skips that metric and records why. The
        loaded metrics are then dropped and built again after generation: kept, their networks
        would hold accelerator memory through the whole training. The second load reads files
        just read (seconds); a world measurer is kept in-process (the world metrics' store),
        so it is trained at most once. Loading may draw random numbers (a network's initialisation
        before its weights are loaded, a world measurer's training reseeds torch): the random
        state is restored afterwards, so that the training is the same whatever metrics are listed.
        """
        with _random_state_kept():
            for name, metric in self._metrics(context).items():
                try:
                    metric.prepare()
                except MissingWeightsError:
                    continue
                except MemoZooError as error:
                    raise MemoZooError(f"metric {name}: {error}\n(checked before training: nothing was trained "
                                       "or generated)") from error

    def _train(self, context: RunContext, train: TrainConfig, out_dir: Path, run: Any, tag: str) -> Path:
        """Train ``train`` into ``out_dir`` unless a finished training is there; returns ``out_dir``."""
        from memo_zoo.train.checkpoint import latest_checkpoint, read_state
        from memo_zoo.train.loop import Trainer

        latest = latest_checkpoint(out_dir)
        state = None if latest is None else read_state(latest)
        if state is not None and state.step >= train.steps:
            # Same training key = same weights: another variant (or an earlier run) already trained it.
            context.run.set_tags({tag: f"reused {latest}"})
            _copy_final_loss(run, state)
            return out_dir
        train = train.model_copy(update={"out_dir": out_dir, "resume": latest is not None})
        Trainer(train, context.recipe, context.registry, run, context.workdir, context.variant).fit()
        context.run.set_tags({tag: f"trained {out_dir}"})
        return out_dir

    def _detector(self, context: RunContext) -> None:
        """Train the emotion detector first when labels are to be detected and it has no checkpoint."""
        detector, options = context.recipe.emotion_detector, self.config.train_detector
        if options is None or detector is None or self.config.generation.emotion != "detected":
            return
        target = options.out or getattr(detector, "checkpoint", None) or getattr(detector, "head", None)
        if target is not None and _under(Path(context.workdir), Path(target)).is_file():
            return
        stage_task(context, EMOTION_DETECTOR, options).run(context)

    def _expression_guide(self, context: RunContext) -> None:
        """With expression guidance (E6): its classifier, trained first when missing, its path resolved
        under the working directory for every video of this run (the override study's too)."""
        guidance = self.config.generation.expression_guidance
        if guidance is None:
            return
        from memo_zoo.tasks.expression_classifier import ensure_classifier, held_out_speakers

        target = _under(Path(context.workdir), guidance.classifier)
        options = self.config.train_expression_classifier
        held_out = (held_out_speakers(context, context.recipe.data.dataset, self.config.held_out.split)
                    if options is not None and not target.is_file() else frozenset())
        target = ensure_classifier(context, target, options, self.config.train, held_out)
        # The ensemble's members are trained by variants of their own (task.train_expression_classifier
        # trains one file): here each must exist and read this recipe's autoencoder.
        ensemble = [ensure_classifier(context, _under(Path(context.workdir), path), None, self.config.train,
                                      field="ensemble") for path in guidance.ensemble]
        self.expression_guidance = guidance.model_copy(update={"classifier": target, "ensemble": ensemble})

    def _generate(self, context: RunContext, train_dir: Path, video_dir: Path,
                  clips: list[HeldOutClip]) -> dict[str, tuple[Path, Any]]:
        from memo_zoo.generate.loading import load_generator_model

        options, held_out = self.config.generation, self.config.held_out
        video_dir.mkdir(parents=True, exist_ok=True)
        model = None
        done: dict[str, tuple[Path, Any]] = {}
        speeds: list[float] = []
        evaluations: list[float] = []
        for clip in clips:
            out, record = video_dir / f"{clip.id}.mp4", video_dir / f"{clip.id}{RECORD_SUFFIX}"
            portrait_path = video_dir / f"{clip.id}_portrait.png"
            portrait = write_portrait(clip, portrait_path)
            if not (record.is_file() and out.is_file()):
                if model is None:
                    model = load_generator_model(train_dir, context.recipe, context.registry)
                emotion: Any = options.emotion
                if emotion == "detected":
                    emotion = None
                elif emotion == "truth":
                    emotion = truth_schedule(clip, held_out.max_seconds)
                self.generate_one(model, train_dir, clip, portrait_path, out, record, emotion, held_out.max_seconds)
            info = json.loads(record.read_text(encoding="utf-8"))
            speeds.append(info["seconds_per_frame"])
            if "evaluations_per_frame" in info:  # records written before the count existed have none
                evaluations.append(info["evaluations_per_frame"])
            done[clip.id] = (out, portrait)
            if self.config.log_videos:
                context.run.log_artifact(out, "videos")
            context.run.set_tags({"memo_zoo.experiment.fps": info["fps"]})
        context.run.log_metrics({"gen/seconds_per_frame": sum(speeds) / len(speeds)})
        if evaluations:  # diffusion-net forwards per generated frame (guidance levels counted; issue 19)
            context.run.log_metrics({"gen/evaluations_per_frame": sum(evaluations) / len(evaluations)})
        return done

    def generate_one(self, model: Any, train_dir: Path, clip: HeldOutClip, portrait: Path, out: Path, record: Path,
                     emotion: Any, max_seconds: float | None) -> dict[str, Any]:
        """Generate ``clip``'s audio from ``portrait`` with ``emotion`` (None = detected, a label or a
        schedule) into ``out``, then its ``record`` (the completion marker); returns the record."""
        from memo_zoo.generate.config import GenerateConfig
        from memo_zoo.generate.pipeline import generate_video

        options = self.config.generation
        config = GenerateConfig(image=portrait, audio=clip.record.audio_source, out=out, checkpoint=train_dir,
                                clip_frames=options.clip_frames, motion_frames=options.motion_frames,
                                first_memory=options.first_memory,
                                cfg=options.cfg, cache=options.cache, emotion=emotion, seed=options.seed,
                                expression_guidance=self.expression_guidance,
                                max_seconds=max_seconds, check_face=False, device=options.device)
        result = generate_video(model, config, progress=True)
        info = {"clip": clip.record.clip_id, "frames": result.frames, "seconds": result.seconds,
                "seconds_per_frame": result.seconds_per_frame, "fps": result.video_fps,
                "emotion_schedule": result.emotion_schedule, "network_evaluations": result.network_evaluations,
                "evaluations_per_frame": result.evaluations_per_frame}
        _write_json(record, info)
        return info

    def _evaluate(self, context: RunContext, clips: list[HeldOutClip], generated: dict[str, tuple[Path, Any]]) -> None:
        from memo_zoo.eval.pairs import FilePair
        from memo_zoo.eval.runner import evaluate, log_evaluation

        recipe = context.recipe
        if not recipe.metrics:
            context.run.set_tags({"memo_zoo.eval.skipped": "the recipe lists no metrics"})
            return
        metrics = self._metrics(context)
        # Loaders, not decoded videos: each is decoded where it is measured (here, or on a worker when
        # the evaluation is sharded: task.evaluation), one at a time; the truth is read here, since
        # only the dataset component can read it.
        pairs = [FilePair(clip.id, generated[clip.id][0], clip.record.video, generated[clip.id][1],
                          truth_arrays(clip)) for clip in clips]
        options = self.config.evaluation
        started = time.perf_counter()
        self.evaluation = evaluate(metrics, pairs, total=len(clips), workers=options.workers,
                                   engine=options.engine, address=options.address,
                                   cpus_per_worker=options.cpus_per_worker, gpus_per_worker=options.gpus_per_worker)
        log_evaluation(context.run, self.evaluation, prefix="eval/")
        # The world metrics' measurer was checked against held-out truth when it was trained; its
        # check goes with the figures it produced, so a reader can judge the measuring instrument.
        reports = [m.report for m in metrics.values() if isinstance(getattr(m, "report", None), BaseModel)]
        if reports:
            context.run.log_dict(reports[0].model_dump(mode="json"), "measurer_check.json")
        context.run.log_metrics({"eval/wall_seconds": time.perf_counter() - started})

    # ---- the whole sweep -----------------------------------------------------------------------

    def finish_sweep(self, context: RunContext, children: dict[str, str]) -> None:
        """After every variant: the comparison report on the parent run (memo_zoo.eval.report)."""
        if not self.config.report:
            return
        from memo_zoo.eval.report import report_run

        root = _under(Path(context.workdir), self.config.out_dir) / context.recipe.name
        report_run(context.run.client, context.run.id, root / "reports" / context.run.id, log_to=context.run)


@contextmanager
def _random_state_kept() -> Iterator[None]:
    """Python's, numpy's and torch's (CPU and every CUDA device's) random state as on entry, on exit."""
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _under(workdir: Path, path: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else workdir / path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomically(path, json.dumps(data, indent=1))


def build(config: ExperimentConfig) -> ExperimentTask:
    return ExperimentTask(config)
