"""``task: {kind: train}``: train the recipe's MEMO network on its dataset (spec §5, L1-L7).

The options are ``memo_zoo.train.config.TrainConfig``; the work is ``memo_zoo.train.loop.Trainer``.
Run it with ``memo-zoo run RECIPE`` (one process) or ``memo-zoo train RECIPE [--num-processes N]
[--resume]`` (``memo_zoo_plugins.tasks.train_cli``), or under ``accelerate launch``.
"""

from __future__ import annotations

from memo_zoo.runner import RunContext
from memo_zoo.train.config import TrainConfig
from memo_zoo.train.loop import Trainer, TrainResult

__all__ = ["TrainConfig", "TrainTask", "build"]


class TrainTask:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.result: TrainResult | None = None

    def run(self, context: RunContext) -> None:
        trainer = Trainer(self.config, context.recipe, context.registry, context.run, context.workdir,
                          context.variant)
        self.result = trainer.fit()


def build(config: TrainConfig) -> TrainTask:
    return TrainTask(config)
