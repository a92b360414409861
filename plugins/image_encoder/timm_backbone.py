"""``timm``: any timm backbone's pooled features as the image embedding (spec A4 alternative).

``timm.create_model(model, pretrained=False, num_classes=0)`` (never downloads) plus a LOCAL
state dict (``.safetensors``, or a ``.pth``/``.pt``/``.bin`` torch file, possibly wrapped in
``state_dict``/``model`` and with DDP's ``module.`` prefix). The classifier's weights in the file
are ignored (``num_classes=0`` removes the classifier); any other missing or extra key is an
error, so a checkpoint of another architecture is refused rather than half loaded.
Preprocessing follows timm's eval transform for the model: centre crop of ``crop_pct`` of the
shorter side, resize to the model's input size, the model's mean/std. Frozen like clip_vision.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.weights import resolve_weights
from memo_zoo.model.frozen_encoder import FrozenEncoder, check_images, fit_square
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.image_encoder.configs import TimmEncoderConfig


def load_state_dict(path: Path) -> dict[str, Tensor]:
    """A flat ``name -> tensor`` dict from a safetensors or torch file."""
    if path.is_dir():
        raise MissingWeightsError(f"timm weights: {path} is a folder; give the state-dict file inside it")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)  # weights_only: no pickled code
        for key in ("state_dict", "model", "module"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise MemoZooError(f"timm weights: {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


class TimmImageEncoder(FrozenEncoder):
    def __init__(self, config: TimmEncoderConfig):
        super().__init__()
        import timm

        path = resolve_weights(config.weights, f"timm {config.model} weights (state-dict file)")
        try:
            self.backbone = timm.create_model(config.model, pretrained=False, num_classes=0)
        except RuntimeError as error:  # timm's "Unknown model" is a RuntimeError
            raise MemoZooError(f"timm image encoder: {error}") from None
        state = load_state_dict(path)
        result = self.backbone.load_state_dict(state, strict=False)
        classifier = self.backbone.pretrained_cfg.get("classifier") or ""
        prefixes = tuple(f"{name}." for name in ([classifier] if isinstance(classifier, str) else classifier) if name)
        unexpected = [k for k in result.unexpected_keys if not (prefixes and k.startswith(prefixes))]
        if result.missing_keys or unexpected:
            raise MemoZooError(
                f"timm image encoder: {path} does not fit {config.model!r}: missing {result.missing_keys[:5]}"
                f"{'...' if len(result.missing_keys) > 5 else ''}, unexpected {unexpected[:5]}"
                f"{'...' if len(unexpected) > 5 else ''}")
        self.freeze()
        self.embed_dim = self.backbone.num_features
        data = timm.data.resolve_model_data_config(self.backbone)
        self.image_size = config.image_size or data["input_size"][-1]
        self.crop = float(data.get("crop_pct", 1.0))
        self.register_buffer("mean", torch.tensor(data["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data["std"]).view(1, 3, 1, 1), persistent=False)

    def encode(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, num_features) pooled backbone features."""
        check_images(images)
        x = fit_square((images.float() + 1) / 2, self.image_size, self.crop).clamp(0, 1)
        x = (x - self.mean.float()) / self.std.float()
        with torch.no_grad():
            return self.backbone(x.to(self.backbone_dtype()))


def build(config: TimmEncoderConfig) -> TimmImageEncoder:
    return TimmImageEncoder(config)
