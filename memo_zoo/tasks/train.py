"""``task: {kind: train}``: train the recipe's MEMO network on its dataset (spec §5, L1-L7).

The options are ``memo_zoo.train.config.TrainConfig`` plus ``train_vae`` (``TrainTaskConfig``); the
work is ``memo_zoo.train.loop.Trainer``. Run it with ``memo-zoo run RECIPE`` (one process) or
``memo-zoo train RECIPE [--num-processes N] [--resume]`` (``memo_zoo.cli.train``), or
under ``accelerate launch``. ``train_vae:`` holds the options of the ``train_vae`` task, which the
autoencoder's plugin registers (``memo_zoo.tasks.stages``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memo_zoo.errors import MemoZooError
from memo_zoo.runner import RunContext
from memo_zoo.tasks.stages import AUTOENCODER, AutoencoderOptions, AutoencoderTraining, stage_task
from memo_zoo.train.config import TrainConfig
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.tasks.configs import TrainTaskConfig

if TYPE_CHECKING:
    from memo_zoo.train.loop import TrainResult

__all__ = ["TrainConfig", "TrainTask", "TrainTaskConfig", "build"]


class TrainTask:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.result: TrainResult | None = None

    def preflight(self, context: RunContext) -> None:
        """Refuse before any MLflow run exists: a resume with nothing (or nothing left) to resume,
        a fresh run into an out_dir that holds checkpoints."""
        # The training loop (torch, diffusers, accelerate) is imported when the task runs, so that
        # registering the task (memo-zoo ls, validate, schema) does not pay for it.
        from memo_zoo.train.loop import Trainer

        Trainer(self.config, context.recipe, context.registry, None, context.workdir, context.variant).check_start()

    def run(self, context: RunContext) -> None:
        options = getattr(self.config, "train_vae", None)
        if options is not None:
            _ensure_vae_once(context, options.for_samples(self.config.samples))
        from memo_zoo.train.loop import Trainer

        trainer = Trainer(self.config, context.recipe, context.registry, context.run, context.workdir,
                          context.variant)
        self.result = trainer.fit()


def _ensure_vae_once(context: RunContext, options: AutoencoderOptions, timeout: float = 3600.0) -> None:
    """Under a multi-process launch only rank 0 trains the autoencoder (the process group does not
    exist yet: accelerate starts it in ``Trainer.fit``); the other ranks wait for its folder, which
    appears whole (renamed into place)."""
    import os
    import time

    if int(os.environ.get("RANK", "0")) != 0:
        folder = options.target_folder(context.recipe)
        deadline = time.monotonic() + timeout
        while not (folder / "config.json").is_file():
            if time.monotonic() > deadline:
                raise MemoZooError(f"rank {os.environ['RANK']}: waited {timeout:.0f} s for rank 0 to train the "
                                   f"autoencoder into {folder}")
            time.sleep(2.0)
    training: AutoencoderTraining = stage_task(context, AUTOENCODER, options)
    training.ensure(context)


def build(config: TrainConfig) -> TrainTask:
    return TrainTask(config)
