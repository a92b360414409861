"""``memo-zoo generate --recipe RECIPE --image PORTRAIT --audio AUDIO [--out video.mp4] ...``.

Generates a talking video with the model a recipe describes (its ``model``, ``scheduler``,
``emotion_detector`` and ``seed``; any task kind: a training recipe works as is, and a
``task: {kind: generate}`` recipe provides the defaults of every generation option). A core
command (``memo_zoo.cli.app.core_commands``).

Overrides: ``key=value`` pairs change the recipe (``scheduler.steps=10``, ``seed=3``), as in
``memo-zoo run``; ``generate.KEY=value`` pairs change a generation option
(``generate.cfg.mode=per_condition``, ``generate.emotion='[{start_s: 0, end_s: 2, label: happy}]'``).
Flags win over both (``--weights`` is the recipe override ``model.network.weights``: the release a
``memo_released`` recipe loads, also put wherever the recipe named the same release: the audio
encoder's ``projector``, the emotion detector's ``release``). No MLflow run is made (use
``task: {kind: generate}`` with ``memo-zoo run`` for that). Errors a user can fix (bad files, a
checkpoint that does not fit the recipe) are ``MemoZooError``s: one message, exit code 2.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from memo_zoo.errors import MemoZooError
from memo_zoo.plugin.types import CommandSpec

PREFIX = "generate."


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", type=Path, required=True,
                        help="recipe YAML naming the model (a training recipe, or one with task: {kind: generate})")
    parser.add_argument("--profile", help="apply the recipe's named profile of overrides first (e.g. tiny)")
    parser.add_argument("--image", type=Path, help="reference portrait (png, jpg, ...)")
    parser.add_argument("--audio", type=Path, help="driving audio (any format PyAV reads)")
    parser.add_argument("--out", type=Path, help="output MP4 (default: generated.mp4)")
    parser.add_argument("--checkpoint", type=Path,
                        help="training checkpoint, training out_dir or MemoNet folder (default: random weights)")
    parser.add_argument("--weights",
                        help="released MEMO weights for a memo_released recipe: a release folder or a hub id such as "
                             "memoavatar/memo in the local Hugging Face cache; sets the recipe's model.network.weights "
                             "(and the audio projector / emotion classifier release where the recipe names the same "
                             "release)")
    parser.add_argument("--emotion", help="emotion for every clip (e.g. happy; 'none' = no emotion); default: detect")
    parser.add_argument("--steps", type=int, help="sampler steps: sets the recipe's scheduler.steps (default: the "
                                                   "recipe's)")
    parser.add_argument("--cfg", type=float, metavar="SCALE", help="classifier-free guidance scale (default 3.5)")
    parser.add_argument("--cfg-mode", choices=("joint", "per_condition"), help="guidance mode (default joint)")
    parser.add_argument("--seed", type=int, help="noise seed (default: the recipe's seed)")
    parser.add_argument("--fps", type=float, help="video frame rate (default: the training recipe's)")
    parser.add_argument("--size", type=int, help="frame side in pixels (default: the training recipe's)")
    parser.add_argument("--max-seconds", type=float, help="use only the first N seconds of the audio")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: $MEMO_ZOO_DEVICE)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="after the flags: recipe overrides (scheduler.steps=10), or generate.KEY=value for a "
                             "generation option (generate.cfg.mode=per_condition)")


# Where a recipe may name the release besides model.network.weights: the audio encoder's released
# projector (audio_proj) and the released emotion classifier (misc/audio_emotion_classifier).
RELEASE_FIELDS = ("model.audio_encoder.projector", "model.image_encoder.weights", "emotion_detector.release",
                  "task.vocal_separator.weights")


def release_overrides(document: dict, weights: str) -> list[str]:
    """The recipe overrides of ``--weights``: ``model.network.weights``, and every other field of
    ``RELEASE_FIELDS`` that names the same release as the recipe's network did (one release, one
    flag). JSON quoting keeps any path or hub id one YAML string."""
    def value(dotted: str):
        node = document
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    before = value("model.network.weights")
    fields = ["model.network.weights"] + [f for f in RELEASE_FIELDS if before is not None and value(f) == before]
    return [f"{field}={json.dumps(weights)}" for field in fields]


def generate_options(task_document: Any, args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> dict:
    """The ``GenerateConfig`` document: the recipe's generate task (if any), then ``generate.*``
    overrides, then the flags."""
    from memo_zoo.recipe.merge import set_dotted

    options: dict[str, Any] = {}
    if isinstance(task_document, dict) and task_document.get("kind") == "generate":
        options = {k: copy.deepcopy(v) for k, v in task_document.items() if k != "kind"}
    for key, value in overrides:
        set_dotted(options, key, value)
    flags = {"image": args.image, "audio": args.audio, "out": args.out, "checkpoint": args.checkpoint,
             "emotion": args.emotion, "seed": args.seed, "fps": args.fps, "size": args.size,
             "max_seconds": args.max_seconds, "device": args.device}
    options.update({k: str(v) if isinstance(v, Path) else v for k, v in flags.items() if v is not None})
    if args.cfg is not None or args.cfg_mode is not None:
        guidance = dict(options.get("cfg") or {})
        if args.cfg is not None:
            guidance["scale"] = args.cfg
        if args.cfg_mode is not None:
            guidance["mode"] = args.cfg_mode
        options["cfg"] = guidance
    return options


def _run(args: argparse.Namespace) -> int:
    from memo_zoo.cli.registry import registry
    from memo_zoo.generate.config import GenerateConfig
    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo.recipe.merge import OverrideError, parse_override

    try:
        parsed = [parse_override(text) for text in args.overrides]
    except OverrideError as error:
        raise MemoZooError(str(error)) from None
    recipe_overrides = [text for text, (key, _) in zip(args.overrides, parsed) if not key.startswith(PREFIX)]
    generate_overrides = [(key[len(PREFIX):], value) for key, value in parsed if key.startswith(PREFIX)]
    # The step count has one home, the recipe's scheduler (memo_zoo.recipe.moved): `--steps N` and
    # the older `generate.steps=N` are recipe overrides, so the recipe that runs says what ran.
    for key, value in [(k, v) for k, v in generate_overrides if k == "steps"]:
        warnings.warn("`generate.steps` has moved to the recipe's `scheduler.steps`; write scheduler.steps="
                      f"{value} (or --steps {value})", FutureWarning, stacklevel=1)
        recipe_overrides.append(f"scheduler.steps={value}")
    generate_overrides = [(k, v) for k, v in generate_overrides if k != "steps"]
    if args.steps is not None:
        recipe_overrides.append(f"scheduler.steps={args.steps}")

    reg = registry()
    if args.weights is not None:
        document = load_recipe(args.recipe, reg, recipe_overrides, profile=args.profile).document
        recipe_overrides += release_overrides(document, str(args.weights))
    loaded = load_recipe(args.recipe, reg, recipe_overrides, profile=args.profile)
    try:
        options = generate_options(loaded.document.get("task"), args, generate_overrides)
    except OverrideError as error:
        raise MemoZooError(str(error)) from None
    for needed in ("image", "audio"):
        if options.get(needed) is None:
            raise MemoZooError(f"memo-zoo generate needs --{needed} (or task.{needed} in a generate recipe)")
    try:
        config = GenerateConfig.model_validate(options)
    except ValidationError as error:
        problems = "\n".join(f"  {'.'.join(str(p) for p in e['loc']) or '<options>'}: {e['msg']}"
                             for e in error.errors())
        raise MemoZooError(f"invalid generation options:\n{problems}") from None
    return run_generation(config, loaded.recipe, reg)


def run_generation(config: Any, recipe: Any, registry: Any) -> int:
    """Seed, load the model, generate, print a one-line summary; returns the exit code."""
    from memo_zoo.generate.config import check_output
    from memo_zoo.generate.loading import load_generator_model
    from memo_zoo.generate.pipeline import generate_video
    from memo_zoo.seeding import seed_everything

    check_output(config)  # before the model is loaded: a refused --out should cost nothing
    # The recipe seed also fixes the random weights of a checkpoint-less smoke run.
    seed_everything(recipe.seed)
    model = load_generator_model(config.checkpoint, recipe, registry)
    result = generate_video(model, config)
    print(f"wrote {result.path}: {result.frames} frames at {result.video_fps:g} fps "
          f"({result.audio_seconds:.2f} s of audio, {result.clips} clips) in {result.seconds:.1f} s, "
          f"{result.seconds_per_frame:.3f} s per frame", file=sys.stdout)
    return 0


GENERATE = CommandSpec(
    name="generate",
    help="generate a talking video from a portrait and an audio track (spec §6)",
    description="Generate an MP4 (H.264 + the input audio) of any length, 16-frame clip by clip, with the model "
                "of RECIPE and the weights of --checkpoint. key=value overrides change the recipe; "
                "generate.KEY=value changes a generation option (e.g. generate.cfg.mode=per_condition).",
    configure=_configure,
    run=_run,
    example="memo-zoo generate --recipe train.yaml --checkpoint checkpoints/my-run "
            "--image portrait.png --audio speech.wav --out video.mp4 --emotion happy --steps 20 --cfg 3.5",
)
