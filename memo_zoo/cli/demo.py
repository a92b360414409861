"""``memo-zoo demo [--recipe R] [--checkpoint C | --weights W] [--host H] [--port P] [--auth USER:PASSWORD]
[--max-upload-mb MB] [--max-seconds S] [key=value ...]``: the web demo (docs/demo.md).

A core command (``memo_zoo.cli.app.core_commands``); the page itself is ``memo_zoo.demo``. Without
--checkpoint or --weights it serves the model the recipe trains (the embedded default:
``recipes/experiment_tiny.yaml``'s training, shared with the ablations), training it first when it
is missing. Safe by default: 127.0.0.1 only, no share link, bounded uploads and video length, its
own temporary folder, removed at exit. Needs the ``demo`` extra (``pip install "memo-zoo[demo]"``).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from memo_zoo.errors import MemoZooError
from memo_zoo.plugin.types import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    from memo_zoo.demo.options import DemoOptions

    fields = DemoOptions.model_fields

    def described(name: str) -> str:
        default = fields[name].default
        return f"{fields[name].description} (default: {default})" if default is not None else fields[name].description

    parser.add_argument("--recipe", type=Path, default=fields["recipe"].default, help=described("recipe"))
    parser.add_argument("--profile", help=fields["profile"].description)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help=fields["checkpoint"].description)
    source.add_argument("--weights", help=fields["weights"].description)
    parser.add_argument("--host", default=fields["host"].default, help=described("host"))
    parser.add_argument("--port", type=int, default=fields["port"].default, help=described("port"))
    parser.add_argument("--auth", metavar="USER:PASSWORD",
                        help="require this login (or @FILE holding USER:PASSWORD, kept out of `ps`)")
    parser.add_argument("--max-upload-mb", type=float, default=fields["max_upload_mb"].default,
                        help=described("max_upload_mb"))
    parser.add_argument("--max-seconds", type=float, default=fields["max_seconds"].default,
                        help=described("max_seconds"))
    parser.add_argument("--min-image-px", type=int, default=fields["min_image_px"].default,
                        help=described("min_image_px"))
    parser.add_argument("--queue-size", type=int, default=fields["queue_size"].default, help=described("queue_size"))
    parser.add_argument("--device", help=fields["device"].description)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=fields["overrides"].description)


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from memo_zoo.cli.registry import registry

    if importlib.util.find_spec("gradio") is None:
        raise MemoZooError('memo-zoo demo needs Gradio: pip install "memo-zoo[demo]"')
    from memo_zoo.demo.options import DemoOptions
    from memo_zoo.demo.server import serve

    overrides = list(args.overrides)
    if args.weights is not None:
        overrides += _release_overrides(args, overrides)
    try:
        options = DemoOptions(recipe=args.recipe, profile=args.profile, overrides=overrides,
                              checkpoint=args.checkpoint, weights=args.weights, host=args.host, port=args.port,
                              auth=args.auth, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                              min_image_px=args.min_image_px, queue_size=args.queue_size, device=args.device,
                              workdir=Path.cwd())
    except ValidationError as error:
        problems = "\n".join(f"  --{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                             for e in error.errors())
        raise MemoZooError(f"invalid demo options:\n{problems}") from None
    return serve(options, registry())


def _release_overrides(args: argparse.Namespace, overrides: list[str]) -> list[str]:
    """--weights as recipe overrides, by the generate command's one rule (the release's fields)."""
    from memo_zoo.cli.generate import release_overrides
    from memo_zoo.cli.registry import registry
    from memo_zoo.recipe.loader import load_recipe

    document = load_recipe(args.recipe, registry(), overrides, profile=args.profile).document
    return release_overrides(document, str(args.weights))


DEMO = CommandSpec(
    name="demo",
    help="serve a web page that generates talking videos (Gradio; 127.0.0.1 only unless --host)",
    description="Upload a portrait and an audio track (or record one), choose the emotion, guidance, steps and "
                "length, and get the MP4 and its emotion timeline. Without --checkpoint/--weights it serves the "
                "model the recipe trains (default recipes/experiment_tiny.yaml), training it first if missing. "
                "One generation at a time; uploads and outputs live in a temporary folder removed at exit.",
    configure=_configure,
    run=_run,
    example="memo-zoo demo --recipe recipes/train_tiny.yaml --checkpoint checkpoints/train-tiny --port 7860",
)
