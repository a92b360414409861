"""The model the demo serves: the recipe's parts with a checkpoint's weights, loaded once at start.

Three sources, as ``memo-zoo generate`` has them: ``--checkpoint`` (a zoo training), ``--weights``
(the released model, for a ``memo_released`` recipe), or neither: then the model the recipe itself
trains. For an experiment recipe (the embedded default, ``recipes/experiment_tiny.yaml``) that is
``<out_dir>/train-<hash>``, the folder the experiment task keys by everything that changes the
weights (``memo_zoo.tasks.experiment.training_key``), so the demo serves the very training the
ablations made and reuse; for a train recipe it is the recipe's ``out_dir``. When that training is
missing or unfinished it is run first, through the runner as ``memo-zoo run`` would (an MLflow
run, resumable, progress bars on the terminal), before the server opens: a server that cannot
generate should not accept visitors. Loading happens before serving for the same reason: a
checkpoint that does not fit the recipe stops ``memo-zoo demo`` with the differing fields.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memo_zoo.demo.options import DemoOptions
from memo_zoo.errors import MemoZooError

# Overrides for the one run that trains a missing default: the training key covers the model, the
# data, the seed and task.train only, so these leave the trained weights exactly what the recipe
# makes, and only cut the work after training (one half-second held-out video, no metric, no report).
TRAIN_ONLY = ["metrics=[]", "task.report=false", "task.log_videos=false",
              "task.held_out={videos: 1, max_seconds: 0.5}"]


@dataclass
class DemoModel:
    """The loaded model and what the page offers for it."""

    generator: Any  # memo_zoo.generate.loading.GeneratorModel
    recipe: Any
    labels: tuple[str, ...]  # the emotion names the network knows, index order
    generation: dict[str, Any]  # the recipe's own generation options (cfg, clip_frames, ...)
    steps: int | None  # the sampler's step count, None when the sampler has none
    source: str  # one line saying which weights are served

    def with_steps(self, steps: int | None) -> Any:
        """The generator with another sampler step count (a copy: the loaded model is shared)."""
        if steps is None or self.steps is None or steps == self.steps:
            return self.generator
        scheduler = self.generator.scheduler.model_copy(update={"steps": int(steps)})
        return dataclasses.replace(self.generator, scheduler=scheduler)


def load_demo_model(options: DemoOptions, registry: Any) -> DemoModel:
    """Resolve the weights (training the default when needed) and load the model; ``MemoZooError``
    for anything the user can fix, naming the recipe, the folder or the differing fields."""
    from memo_zoo.generate.loading import load_generator_model
    from memo_zoo.recipe.loader import load_recipe

    recipe_path = _under(options.workdir, options.recipe)
    if not recipe_path.is_file():
        hint = (" (the default: run memo-zoo demo from the memo-zoo checkout, or pass --recipe)"
                if options.recipe == DemoOptions.model_fields["recipe"].default else "")
        raise MemoZooError(f"recipe {recipe_path}: not found{hint}")
    # --weights arrives as recipe overrides already (the CLI's one rule for the release's fields).
    loaded = load_recipe(recipe_path, registry, options.overrides, profile=options.profile)
    recipe = loaded.recipe
    if options.checkpoint is not None:
        checkpoint, source = _under(options.workdir, options.checkpoint), f"checkpoint {options.checkpoint}"
    elif options.weights is not None:
        checkpoint, source = None, f"released weights {options.weights}"
    else:
        checkpoint = ensure_trained(loaded, recipe_path, registry, options)
        source = f"{recipe_path.name}'s training in {checkpoint}"
    generation = recipe_generation_options(recipe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_generator_model(checkpoint, recipe, registry)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    labels = _labels(model, generation)
    steps = getattr(model.scheduler, "steps", None)
    return DemoModel(model, recipe, labels, generation, None if steps is None else int(steps), source)


# The generation options a recipe's task may set that the page does not ask for; they stay the
# recipe's (a generate task's options, an experiment's task.generation).
RECIPE_GENERATION_KEYS = ("fps", "size", "clip_frames", "motion_frames", "cfg", "cache", "noise", "motion_source",
                          "emotion_ties", "label_set", "dtype", "vocal_separator")


def recipe_generation_options(recipe: Any) -> dict[str, Any]:
    """The options of ``RECIPE_GENERATION_KEYS`` the recipe's task sets (none for other tasks)."""
    kind = getattr(recipe.task, "kind", None)
    source = recipe.task.generation if kind == "experiment" else recipe.task if kind == "generate" else None
    if source is None:
        return {}
    dumped = source.model_dump(mode="json", exclude_none=True)
    return {key: dumped[key] for key in RECIPE_GENERATION_KEYS if key in dumped}


def _labels(model: Any, generation: dict[str, Any]) -> tuple[str, ...]:
    from memo_zoo.generate.config import GenerateConfig
    from memo_zoo.generate.emotion import emotion_labels

    # emotion_labels reads only label_set from the options (the recipe's, if it sets one); the two
    # paths are never opened.
    options = GenerateConfig(image=Path("portrait.png"), audio=Path("audio.wav"),
                             label_set=generation.get("label_set"))
    return tuple(emotion_labels(model, options))


def default_training(recipe: Any, workdir: Path) -> tuple[Path, int]:
    """(the folder the recipe trains into, the step its training ends at) for an experiment or a
    train recipe; ``MemoZooError`` for other tasks."""
    kind = getattr(recipe.task, "kind", None)
    if kind == "experiment":
        from memo_zoo.tasks.experiment import shared_stage1, training_key

        config = recipe.task
        split = shared_stage1(config)
        # With a shared stage 1 the variant's folder holds the later phases only, counted from 0.
        train = config.train if split is None else split[1]
        out_dir = _under(workdir, config.out_dir)
        folder = _under(workdir, train.out_dir) if train.out_dir is not None else \
            out_dir / f"train-{training_key(recipe, config)}"
        return folder, int(train.steps)
    if kind == "train":
        folder = recipe.task.out_dir if recipe.task.out_dir is not None else Path("checkpoints") / str(recipe.name)
        return _under(workdir, folder), int(recipe.task.steps)
    raise MemoZooError(f"the recipe's task is {kind!r}: without --checkpoint the demo serves the model an experiment "
                       "or train recipe trains (e.g. recipes/experiment_tiny.yaml); give --checkpoint or --weights")


def finished_checkpoint(folder: Path, steps: int) -> Path | None:
    """The newest checkpoint of ``folder`` when its training reached ``steps``, else None."""
    from memo_zoo.train.checkpoint import latest_checkpoint, read_state

    latest = latest_checkpoint(folder) if folder.is_dir() else None
    if latest is None or read_state(latest).step < steps:
        return None
    return latest


def ensure_trained(loaded: Any, recipe_path: Path, registry: Any, options: DemoOptions) -> Path:
    """The recipe's finished training, run first (or resumed) when it is missing."""
    recipe, workdir = loaded.recipe, options.workdir
    if recipe.sweep:
        raise MemoZooError(f"recipe {recipe_path} is a sweep of {len(recipe.sweep)} variants: which model to serve? "
                           "Give a variant's --checkpoint, or a recipe without sweep (recipes/experiment_tiny.yaml)")
    folder, steps = default_training(recipe, workdir)
    done = finished_checkpoint(folder, steps)
    if done is not None:
        return done
    print(f"no finished training of {recipe_path.name} in {folder}: training it first ({steps} steps; done "
          "once, reused afterwards, also by the ablations)", file=sys.stderr)
    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo.runner import run_recipe

    kind = recipe.task.kind
    overrides = list(TRAIN_ONLY) if kind == "experiment" else []
    if kind == "train" and folder.is_dir() and any(folder.iterdir()):
        overrides.append("task.resume=true")  # an interrupted training goes on, as `memo-zoo train --resume`
    training = load_recipe(recipe_path, registry, [*options.overrides, *overrides], profile=options.profile)
    run_recipe(training, registry, workdir=workdir)
    done = finished_checkpoint(folder, steps)
    if done is None:
        raise MemoZooError(f"training {recipe_path} finished but {folder} holds no checkpoint at step {steps}")
    return done


def _under(workdir: Path, path: Path) -> Path:
    return path if path.is_absolute() else workdir / path
