"""Registers the built-in autoencoders."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo_plugins.vae import pixel, sd_vae


@hookimpl
def vae_components() -> list[ComponentSpec]:
    return [ComponentSpec("pixel", pixel.PixelVAEConfig, pixel.build,
                          "identity autoencoder, optional pixel-unshuffle patches (tiny CPU default)"),
            ComponentSpec("sd_vae", sd_vae.SDVAEConfig, sd_vae.build,
                          "pretrained diffusers AutoencoderKL from local weights (SD1.5 VAE, A1)")]
