"""A training recipe of a very small MEMO network (32 px through the pixel VAE), written to a temp
folder: for tests that build the trainer's parts without training."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from memo_zoo.recipe.loader import load_recipe

NETWORK = {"block_out_channels": [16, 32], "attention_head_dim": 2, "cross_attention_dim": 16,
           "latent_channels": 192, "audio_tokens": 4, "audio_dim": 8, "image_tokens": 2, "image_embed_dim": 8}
SAMPLES = {"size": 32, "clip_frames": 4, "motion_frames": 2, "audio_window": 1}


def small_train_recipe(folder: Path, registry: Any, temporal: str = "{kind: linear_memory, heads: 2}",
                       network: dict[str, Any] = NETWORK, name: str = "small") -> Any:
    """The validated recipe (``task: train``) of the small network with ``temporal`` (YAML flow text)."""
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {name}
        seed: 3
        task: {{kind: train}}
        model:
          network: {network}
          temporal: {temporal}
          audio_fusion: {{kind: multimodal_attention, heads: 2}}
          audio_encoder: {{kind: log_mel, token_count: 4, token_dim: 8, hidden: 16, n_mels: 16, window: 1}}
          image_encoder: {{kind: conv, embed_dim: 8, channels: [8]}}
          vae: {{kind: pixel, patch_size: 8}}
    """))
    return load_recipe(path, registry).recipe
