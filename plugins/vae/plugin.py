"""Registers the built-in autoencoders."""

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
