"""Registers the built-in autoencoders, and the task that trains ``sd_vae``'s (``train_vae``)."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def vae_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.vae import pixel, sd_vae

    return [ComponentSpec("pixel", pixel.PixelVAEConfig, pixel.build,
                          "identity autoencoder, optional pixel-unshuffle patches (tiny CPU default)"),
            ComponentSpec("sd_vae", sd_vae.SDVAEConfig, sd_vae.build,
                          "pretrained diffusers AutoencoderKL from local weights (SD1.5 VAE, A1)")]


@hookimpl
def task_components() -> list[ComponentSpec]:
    # The task that trains sd_vae's autoencoder lives beside it; the train and experiment tasks run
    # it first through the registry (their train_vae: option).
    from memo_zoo_plugins.vae import training_task

    return [ComponentSpec("train_vae", training_task.TrainVAEConfig, training_task.build,
                          "train the recipe's sd_vae (a small AutoencoderKL) on data.dataset's frames (spec A1)")]
