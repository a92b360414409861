"""Registers the built-in autoencoders, and the task that trains ``sd_vae``'s (``train_vae``)."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def vae_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.vae import configs

    return [ComponentSpec("pixel", configs.PixelVAEConfig, lazy("memo_zoo_plugins.vae.pixel:build"),
                          "identity autoencoder, optional pixel-unshuffle patches (tiny CPU default)"),
            ComponentSpec("sd_vae", configs.SDVAEConfig, lazy("memo_zoo_plugins.vae.sd_vae:build"),
                          "pretrained diffusers AutoencoderKL from local weights (SD1.5 VAE, A1)")]


@hookimpl
def task_components() -> list[ComponentSpec]:
    # The task that trains sd_vae's autoencoder lives beside it; the train and experiment tasks run
    # it first through the registry (their train_vae: option). Its config is torch-free and its
    # factory a lazy reference, as above.
    from memo_zoo_plugins.vae import configs

    return [ComponentSpec("train_vae", configs.TrainVAEConfig, lazy("memo_zoo_plugins.vae.training_task:build"),
                          "train the recipe's sd_vae (a small AutoencoderKL) on data.dataset's frames (spec A1)")]
