"""``task: {kind: train_vae}``: train the recipe's ``sd_vae`` autoencoder on its dataset's frames (spec A1).

The recipe names the autoencoder the usual way, ``model.vae: {kind: sd_vae, weights: PATH}``; this
task trains a small diffusers ``AutoencoderKL`` (``memo_zoo_plugins.vae.autoencoder_training``) on
the frames of ``data.dataset`` and writes it to PATH, so the same recipe then trains and generates
through the ``sd_vae`` loader. The ``train`` and ``experiment`` tasks take the same options as
``train_vae:`` and run this first when PATH does not exist yet, so the main job stays one command;
they reach it through the registry (``memo_zoo.tasks.stages``: the options' ``for_samples``,
``key_document`` and ``target_folder``, the task's ``ensure``). Registered by the autoencoders'
plugin (``memo_zoo_plugins.vae.plugin``).

A folder at PATH is never overwritten silently: one this task wrote with the same options is
reused; one written with other options is an error naming both (delete it or point ``weights``
elsewhere; ``overwrite: true`` retrains); a folder without a memo-zoo record (a VAE you brought) is
used as it is. MLflow receives the loss curve (``vae.loss``), the held-out reconstruction figures
(``vae.eval_psnr``, ``vae.eval_l1``), the fitted latent scale, ``vae_record.json`` and
``reconstructions.png`` (held-out frames over their reconstructions).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from memo_zoo.data.media import MediaError
from memo_zoo.errors import MemoZooError
from memo_zoo.runner import RunContext
from memo_zoo_plugins.vae.autoencoder_training import (
    FIGURE_FILE, FrameSource, read_record, train_autoencoder, training_options,
)
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.vae.configs import AutoencoderTrainingConfig, TrainVAEConfig, without_later_defaults  # noqa: F401

__all__ = ["TrainVAEConfig", "TrainVAETask", "build"]


def _sources(context: RunContext, config: TrainVAEConfig) -> tuple[list[FrameSource], dict[str, Any]]:
    from memo_zoo.data.cache import FrameCache

    dataset_config = context.recipe.data.dataset
    if dataset_config is None:
        raise MemoZooError("training an autoencoder needs data.dataset (the frames to train on)")
    records = context.registry.build("dataset", dataset_config).clips()
    cache = FrameCache(fps=config.fps, size=config.size)
    sources = []
    for record in records:
        try:
            sources.append(FrameSource(record.clip_id, cache.entry(record).frames()))
        except MediaError as error:
            warnings.warn(f"training the autoencoder without {record.video}: {error}", stacklevel=2)
    data = {"dataset": dataset_config.model_dump(mode="json"), "clips": len(sources), "size": config.size,
            "fps": config.fps}
    return sources, data


class TrainVAETask:
    def __init__(self, config: TrainVAEConfig):
        self.config = config

    def run(self, context: RunContext) -> None:
        folder = self.config.target_folder(context.recipe)
        if folder.exists() and not self.config.overwrite and read_record(folder) is None \
                and (folder / "config.json").is_file():
            raise MemoZooError(f"{folder} already holds an autoencoder that memo-zoo did not train; set "
                               "overwrite: true to replace it, or choose another out")
        self.ensure(context)

    def ensure(self, context: RunContext) -> Path:
        """The trained folder, training it first when missing (see the module docstring for reuse)."""
        config = self.config
        folder = config.target_folder(context.recipe)
        if (folder / "config.json").is_file() and not config.overwrite:
            record = read_record(folder)
            if record is None:
                return folder  # a VAE the user brought: not ours to judge
            wanted, found = training_options(config), record.get("training")
            if found != wanted or record.get("size") != config.size:
                changed = sorted(k for k in wanted if (found or {}).get(k) != wanted[k])
                raise MemoZooError(f"{folder} holds an autoencoder trained with other options ({', '.join(changed) or 'size'}"
                                   f" differ); delete the folder, point model.vae.weights elsewhere, or set "
                                   "train_vae.overwrite: true")
            if context.run is not None:
                context.run.set_tags({"memo_zoo.vae": f"reused {folder}"})
            return folder
        sources, data = _sources(context, config)
        run = context.run
        log = None if run is None else (lambda metrics, step: run.log_metrics(metrics, step=step))
        report = train_autoencoder(sources, config, folder, data, log)
        if run is not None:
            run.log_metrics({"vae.eval_psnr": report.eval_psnr, "vae.eval_l1": report.eval_l1,
                             "vae.eval_recoloured_psnr": report.eval_recoloured_psnr,
                             "vae.scaling_factor": report.scaling_factor, "vae.seconds": report.seconds})
            run.set_tags({"memo_zoo.vae": f"trained {folder}"})
            run.log_dict(read_record(folder), "vae_record.json")
            run.log_artifact(folder / FIGURE_FILE)
        return folder


def build(config: TrainVAEConfig) -> TrainVAETask:
    return TrainVAETask(config)
