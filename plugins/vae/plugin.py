"""Registers the built-in autoencoders."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo_plugins.vae import pixel


@hookimpl
def vae_components() -> list[ComponentSpec]:
    return [ComponentSpec("pixel", pixel.PixelVAEConfig, pixel.build,
                          "identity autoencoder: diffusion on frames (tiny CPU default)")]
