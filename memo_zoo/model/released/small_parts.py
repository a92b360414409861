"""The released ``image_proj`` part as the zoo's ``ImageProjector`` (A4, method.md §10).

The released ``ImageProjModel`` is ``Linear(clip_embeddings_dim -> tokens * cross_attention_dim)``,
reshape to ``(N, tokens, cross_attention_dim)``, then ``LayerNorm(cross_attention_dim)`` (default
eps 1e-5) over each token; its keys are ``proj.*`` and ``norm.*``. The zoo's ``ImageProjector``
(``memo_zoo/model/memo_net.py``) is the same computation under the same key names, so the release
file loads into it unchanged (no rename). In the released pipeline the unconditional branch
feeds an all-zero embedding, which gives ``norm(bias)`` tokens, not zeros (golden case a).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from memo_zoo.model.memo_net import ImageProjector
from memo_zoo.model.released.folder import (load_strict, part_weights_file, read_part_config, read_part_state,
                                            resolve_release)

PART = "image_proj"


def build_image_projector(config: Mapping[str, Any]) -> ImageProjector:
    """An untrained projector shaped by the part config (``read_part_config(folder, "image_proj")``)."""
    return ImageProjector(embed_dim=int(config["clip_embeddings_dim"]), tokens=int(config["clip_extra_context_tokens"]),
                          width=int(config["cross_attention_dim"]))


def load_image_projector(release: str | Path) -> ImageProjector:
    """The released projector of a release (a folder, or a hub id in the local HF cache), weights
    loaded strictly, in eval mode."""
    folder = resolve_release(release)
    module = build_image_projector(read_part_config(folder, PART))
    load_strict(module, read_part_state(folder, PART), str(part_weights_file(folder, PART)))
    return module.eval()
