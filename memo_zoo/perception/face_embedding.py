"""A frozen face-recognition network's 512-d embedding (spec §10): the ``face_embedding`` image
encoder (its plugin, memo_zoo_plugins.image_encoder.face_embedding, registers this class) and the
``identity`` metric's network are this one module, so it lives in the core.

The released code conditions on a face-recognition embedding (ArcFace-style, 512-d) instead of
CLIP. memo-zoo loads such a network as a self-contained serialised graph, so no model code has to
ship with memo-zoo and nothing is downloaded: a TorchScript file (``torch.jit.save(
torch.jit.script(net))`` of e.g. an insightface iresnet100; deprecated by torch but still read)
or a ``.pt2`` torch.export program (``torch.export.save``; export it in eval mode with a dynamic
batch dimension, since an exported program keeps its mode and its declared shapes).

Input contract of the scripted network (the insightface convention): (B, 3, 112, 112) RGB,
normalised to [-1, 1] ((pixel - 127.5) / 127.5), an ALIGNED face crop. memo-zoo's frames are
already in [-1, 1]; ``encode`` takes the centre square (``crop`` x the shorter side: the data
pipeline's face boxes are scaled by 1.1, spec §7, so ~0.9 recovers the tight box), resizes it to
``input_size``, optionally flips RGB -> BGR for networks trained on BGR, and L2-normalises the
output. No landmark alignment is done here: the reference crops are expected to be aligned or
near-frontal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.weights import resolve_weights
from memo_zoo.model.frozen_encoder import FrozenEncoder, check_images, fit_square
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.perception.configs import FaceEmbeddingConfig


class FaceEmbeddingEncoder(FrozenEncoder):
    def __init__(self, config: FaceEmbeddingConfig):
        super().__init__()
        self.config = config
        self.embed_dim = config.embed_dim
        path = resolve_weights(config.weights, "face-recognition network (TorchScript or .pt2 file)")
        if path.is_dir():
            raise MissingWeightsError(f"face-recognition network: {path} is a folder; give the network's file")
        try:
            if path.suffix == ".pt2":
                self.backbone = torch.export.load(str(path)).module()
            else:
                self.backbone = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:  # noqa: BLE001 - a corrupt file fails in format-specific ways (zip, pickle, graph)
            raise MemoZooError(f"face-recognition network: {path} is not a TorchScript file (torch.jit.save) "
                               f"nor, with suffix .pt2, a torch.export program: {error}") from None
        self.freeze()

    def encode(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, embed_dim), unit L2 norm."""
        check_images(images)
        x = fit_square(images.float(), self.config.input_size, self.config.crop).clamp(-1, 1)
        if self.config.bgr:
            x = x.flip(1)
        with torch.no_grad():
            out = self.backbone(x.to(self.backbone_dtype()))
        if isinstance(out, (tuple, list)):  # some exports return (embedding, norm)
            out = out[0]
        if out.dim() != 2 or out.shape[1] != self.embed_dim:
            raise MemoZooError(f"face-recognition network returned shape {tuple(out.shape)}, expected "
                               f"(batch, {self.embed_dim}); set embed_dim to the network's width")
        return F.normalize(out.float(), dim=1).to(out.dtype)
