"""``sd_vae``: a pretrained diffusers AutoencoderKL from local disk, SD1.5's by default use (spec A1).

``weights`` is either a diffusers folder (``config.json`` + weights; an SD pipeline folder works
too, its ``vae/`` subfolder is used) loaded with ``AutoencoderKL.from_pretrained``, or a single
checkpoint file (``.safetensors``/``.ckpt``/...; original-LDM or diffusers key names) loaded with
``AutoencoderKL.from_single_file``, which needs ``single_file_config``: a local folder holding the
VAE's config.json (diffusers would otherwise fetch one from the Hub, and memo-zoo never downloads).

Latents: ``(z - shift_factor) * scaling_factor`` with both read from the VAE's config (SD1.5:
scale 0.18215, no shift; A1) unless ``scaling_factor`` overrides the scale. ``encode`` returns
the posterior mean (deterministic, what generation wants) or, with ``sample``, a posterior draw
(the usual training-time augmentation). ``tiling``/``slicing`` switch on diffusers' memory
savers for large frames/batches. The VAE never trains (``requires_grad=False``, eval mode), but
``decode`` is not wrapped in ``no_grad`` so that a pixel-space loss can backpropagate through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from memo_zoo.errors import MissingWeightsError
from memo_zoo.weights import check_readable, loading_error, resolve_weights
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.vae.configs import SDVAEConfig


def _config_folder(path: Path, what: str) -> Path:
    """``path`` itself when it holds config.json, else its ``vae/`` subfolder (an SD pipeline folder)."""
    for candidate in (path, path / "vae"):
        if (candidate / "config.json").is_file():
            return candidate
    raise MissingWeightsError(f"{what}: {path} holds no config.json (nor vae/config.json)")


def _load(what: str, path: Path, load: Callable[[], Any]) -> Any:
    """``load()``, with the errors diffusers raises for weights it cannot use turned into a
    ``MemoZooError`` naming ``path`` (a pickled checkpoint cut short, a config with a wrong field)."""
    try:
        return load()
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise loading_error(what, path, error) from None


class SDVAE(torch.nn.Module):
    def __init__(self, config: SDVAEConfig):
        super().__init__()
        from diffusers import AutoencoderKL  # heavy import, only when this component is used

        self.config = config
        what = "SD VAE (AutoencoderKL folder or checkpoint file)"
        path = resolve_weights(config.weights, what)
        if path.is_dir():
            folder = _config_folder(path, what)
            check_readable(folder, what)  # a damaged file is named, not a bare diffusers traceback
            self.vae = _load(what, folder, lambda: AutoencoderKL.from_pretrained(str(folder), local_files_only=True))
        else:
            if config.single_file_config is None:
                raise MissingWeightsError(
                    f"{what}: {path} is a single file; set single_file_config to a local folder with the VAE's "
                    f"config.json (e.g. SD1.5's vae/ folder), since memo-zoo does not fetch configs from the Hub")
            folder = _config_folder(resolve_weights(config.single_file_config, "SD VAE config folder"), what)
            check_readable(path, what)
            check_readable(folder / "config.json", what)
            self.vae = _load(what, path, lambda: AutoencoderKL.from_single_file(str(path), config=str(folder),
                                                                               local_files_only=True))
        self.vae.requires_grad_(False)
        self.vae.eval()
        if config.tiling:
            self.vae.enable_tiling()
        if config.slicing:
            self.vae.enable_slicing()
        vae_config = self.vae.config
        self.scaling_factor = float(config.scaling_factor or vae_config.scaling_factor)
        self.shift_factor = float(getattr(vae_config, "shift_factor", None) or 0.0)
        self.latent_channels = int(vae_config.latent_channels)
        self.downsample = 2 ** (len(vae_config.block_out_channels) - 1)

    @property
    def deterministic_encode(self) -> bool:
        """The posterior mean is a fixed function of the frames (training may cache it,
        ``memo_zoo.train.latent_cache``); a posterior draw is not."""
        return not self.config.sample

    def train(self, mode: bool = True) -> "SDVAE":
        super().train(mode)
        self.vae.eval()  # frozen: keep it deterministic whatever the host's mode
        return self

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, latent_channels, H / downsample, W / downsample), scaled."""
        dtype = next(self.vae.parameters()).dtype
        posterior = self.vae.encode(frames.to(dtype)).latent_dist
        z = posterior.sample() if self.config.sample else posterior.mean
        return (z - self.shift_factor) * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> (N, 3, H, W), nominally in [-1, 1] (not clamped)."""
        dtype = next(self.vae.parameters()).dtype
        return self.vae.decode((latents / self.scaling_factor + self.shift_factor).to(dtype)).sample


def build(config: SDVAEConfig) -> SDVAE:
    return SDVAE(config)
