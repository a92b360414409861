"""``memo-zoo export --recipe R --checkpoint CKPT --out FOLDER [--dtype ...] [--force]`` (issue 18, item 4).

Writes a trained ``memo_released`` model back in the authors' released layout
(``memo_zoo.model.released.export``), so the released ``inference.py`` (or anything that reads
``memoavatar/memo``) can run it: ``reference_net/``, ``diffusion_net/``, ``image_proj/`` from the
checkpoint's network, ``audio_proj/`` from the recipe's audio encoder with the checkpoint's
encoder weights, ``misc/audio_emotion_classifier/`` when the recipe's emotion detector holds the
released head (``emotion_detector=null`` as an override leaves it out). A core command
(``memo_zoo.cli.app.core_commands``).

Only what generation needs to rebuild the network and the two components is loaded (no VAE, no
image encoder). Everything a user can fix -- a target that is not empty (without ``--force``), a
checkpoint that does not fit the recipe, a network or component the released code cannot run --
is a ``MemoZooError``: one message, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memo_zoo.errors import MemoZooError
from memo_zoo.plugin.types import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", type=Path, required=True,
                        help="the recipe the checkpoint was trained with (model.network.preset: memo_released)")
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="training checkpoint, training out_dir (its newest checkpoint) or MemoNet folder")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the released layout into")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="dtype of the stored floating tensors (default float32, as the release loads)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")


def load_export_model(recipe, registry, checkpoint: Path) -> dict:
    """The network of ``checkpoint`` (checked against the recipe's ``model``), the recipe's audio
    encoder with the checkpoint's encoder weights and its emotion detector, as
    :func:`~memo_zoo.model.released.export.export_release` takes them."""
    from memo_zoo.generate.loading import resolve_checkpoint
    from memo_zoo.model.checkpoint_files import load_encoder_weights
    from memo_zoo.model.compatibility import check_network_matches
    from memo_zoo.model.memo_net import MemoNet, resolved_model
    from memo_zoo.model.released.unet3d import ReleasedDiffusionNet
    from memo_zoo.recipe.components import slot_factories

    model = recipe.model
    factories = slot_factories(registry)
    net_dir, encoders_file = resolve_checkpoint(checkpoint)
    # A memo_released recipe as it builds: geometry from the release's files, component options
    # from its diffusion_net config.json (the recipe's `temporal: {kind: motion_module}` alone
    # would otherwise bring the option defaults, e.g. 8 heads, over the checkpoint's).
    resolved = resolved_model(model, factories)
    check_network_matches(net_dir, resolved, f"checkpoint {checkpoint}")
    try:
        net = MemoNet.from_pretrained(net_dir, factories, network=resolved.network,
                                      temporal=resolved.temporal, audio_fusion=resolved.audio_fusion)
    except MemoZooError as error:
        raise MemoZooError(f"checkpoint {checkpoint} does not fit the recipe's model:\n{error}") from None
    if not isinstance(getattr(net, "diffusion_net", None), ReleasedDiffusionNet):
        raise MemoZooError(f"checkpoint {checkpoint} holds a {type(net).__name__} (model.network.preset "
                           f"{net.network_config.preset!r}): the released code only has the memo_released network; "
                           "export needs a checkpoint of a recipe with model.network.preset: memo_released")
    if model.audio_encoder is None:
        raise MemoZooError("the recipe has no model.audio_encoder: the released code only has wav2vec2 features "
                           "through its audio_proj; export needs model.audio_encoder (kind wav2vec2)")
    audio_encoder = registry.build("audio_encoder", model.audio_encoder)
    if encoders_file is not None:
        load_encoder_weights(encoders_file, {"audio_encoder": audio_encoder})
    detector = None if recipe.emotion_detector is None else registry.build("emotion_detector",
                                                                           recipe.emotion_detector)
    return {"reference_net": net.reference_net, "diffusion_net": net.diffusion_net,
            "image_projector": net.image_proj, "audio_encoder": audio_encoder, "emotion_detector": detector}


def _run(args: argparse.Namespace) -> int:
    from memo_zoo.cli.registry import registry
    from memo_zoo.model.released.export import EXPORT_DTYPES, check_target, export_release
    from memo_zoo.recipe.loader import load_recipe

    check_target(args.out, args.force)  # a refused target is refused before anything loads
    reg = registry()
    loaded = load_recipe(args.recipe, reg, args.overrides)
    parts = load_export_model(loaded.recipe, reg, args.checkpoint)
    result = export_release(args.out, **parts, dtype=EXPORT_DTYPES[args.dtype], force=args.force)
    print(result.summary())
    if "audio_emotion_classifier" not in result.files:
        print("  (no misc/audio_emotion_classifier/: the recipe's emotion detector has no released head)")
    return 0


EXPORT = CommandSpec(
    name="export",
    help="write a memo_released checkpoint back in the authors' released layout (memoavatar/memo)",
    configure=_configure,
    run=_run,
    example="memo-zoo export --recipe recipes/memo_released.yaml --checkpoint checkpoints/finetune-memo "
            "--out exported/",
)
