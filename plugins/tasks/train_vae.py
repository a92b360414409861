"""``task: {kind: train_vae}``: train the recipe's ``sd_vae`` autoencoder on its dataset's frames (spec A1).

The recipe names the autoencoder the usual way, ``model.vae: {kind: sd_vae, weights: PATH}``; this
task trains a small diffusers ``AutoencoderKL`` (``memo_zoo_plugins.vae.autoencoder_training``) on
the frames of ``data.dataset`` and writes it to PATH, so the same recipe then trains and generates
through the ``sd_vae`` loader. The ``train`` and ``experiment`` tasks take the same options as
``train_vae:`` and run this first when PATH does not exist yet, so the main job stays one command.

A folder at PATH is never overwritten silently: one this task wrote with the same options is
reused; one written with other options is an error naming both (delete it or point ``weights``
elsewhere; ``overwrite: true`` retrains); a folder without a memo-zoo record (a VAE you brought) is
used as it is. MLflow receives the loss curve (``vae.loss``), the held-out reconstruction figures
(``vae.eval_psnr``, ``vae.eval_l1``), the fitted latent scale, ``vae_record.json`` and
``vae_reconstructions.png`` (held-out frames over their reconstructions).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional

from pydantic import Field

from memo_zoo.data.media import MediaError
from memo_zoo.errors import MemoZooError
from memo_zoo.runner import RunContext
from memo_zoo.settings import get_settings
from memo_zoo_plugins.vae.autoencoder_training import (AutoencoderTrainingConfig, FrameSource, read_record,
                                                       reconstruction_figure, train_autoencoder,
                                                       training_options)

__all__ = ["TrainVAEConfig", "TrainVAETask", "build", "ensure_vae", "for_samples"]


class TrainVAEConfig(AutoencoderTrainingConfig):
    """Train the recipe's sd_vae (a small AutoencoderKL) on data.dataset's frames (spec A1)."""

    out: Optional[Path] = Field(None, description="where to write the autoencoder folder; default: model.vae.weights")
    size: int = Field(64, ge=8, description="frame side in pixels (the training samples' size; the train and "
                                            "experiment tasks pass their own)")
    fps: float = Field(25.0, gt=0, description="frame rate the clips are decoded at (shares the frame cache with "
                                               "training at the same rate)")
    overwrite: bool = Field(False, description="retrain even when a folder trained with other options is there")


def for_samples(config: TrainVAEConfig, samples: Any) -> TrainVAEConfig:
    """``config`` at the frame size and rate of the MEMO training samples (``SampleConfig``)."""
    return config.model_copy(update={"size": int(samples.size), "fps": float(samples.fps)})


def target_folder(context: RunContext, config: TrainVAEConfig) -> Path:
    """Where the autoencoder goes: ``out``, else ``model.vae.weights`` resolved as sd_vae resolves it."""
    if config.out is not None:
        reference = str(config.out)
    else:
        vae = context.recipe.model.vae
        if vae is None or getattr(vae, "kind", None) != "sd_vae":
            raise MemoZooError("training an autoencoder needs model.vae: {kind: sd_vae, weights: PATH} (or the "
                               f"option out); the recipe's model.vae is {getattr(vae, 'kind', None)!r}")
        reference = vae.weights
    path = Path(reference).expanduser()
    if path.is_absolute():
        return path
    if "/" in reference or reference.startswith("."):
        return Path(context.workdir) / path
    root = get_settings().weights_dir  # a bare name lives under MEMO_ZOO_WEIGHTS_DIR (memo_zoo.weights)
    if root is None:
        raise MemoZooError(f"model.vae.weights {reference!r} is a bare name and MEMO_ZOO_WEIGHTS_DIR is not set: "
                           "give a path (e.g. checkpoints/vae) to train the autoencoder into")
    return Path(root) / path


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


def ensure_vae(context: RunContext, config: TrainVAEConfig) -> Path:
    """The trained folder, training it first when missing (see the module docstring for reuse)."""
    folder = target_folder(context, config)
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
                         "vae.scaling_factor": report.scaling_factor, "vae.seconds": report.seconds})
        run.set_tags({"memo_zoo.vae": f"trained {folder}"})
        run.log_dict(read_record(folder), "vae_record.json")
        _log_figure(run, folder, sources, config)
    return folder


def _log_figure(run: Any, folder: Path, sources: list[FrameSource], config: TrainVAEConfig) -> None:
    """Held-out frames over their reconstructions, as ``vae_reconstructions.png``."""
    from diffusers import AutoencoderKL

    from memo_zoo_plugins.vae.autoencoder_training import eval_frames, split_sources

    train, held = split_sources(sources, config.eval_every)
    frames = eval_frames(held or train, 8)
    vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    with tempfile.TemporaryDirectory() as temp:
        path = reconstruction_figure(vae, frames, Path(temp) / "vae_reconstructions.png")
        run.log_artifact(path)


class TrainVAETask:
    def __init__(self, config: TrainVAEConfig):
        self.config = config

    def run(self, context: RunContext) -> None:
        folder = target_folder(context, self.config)
        if folder.exists() and not self.config.overwrite and read_record(folder) is None \
                and (folder / "config.json").is_file():
            raise MemoZooError(f"{folder} already holds an autoencoder that memo-zoo did not train; set "
                               "overwrite: true to replace it, or choose another out")
        ensure_vae(context, self.config)


def build(config: TrainVAEConfig) -> TrainVAETask:
    return TrainVAETask(config)
