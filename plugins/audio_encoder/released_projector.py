"""The released ``audio_proj`` part as the audio encoders' ``TokenProjector`` (A5, method.md §10).

The released ``AudioProjModel`` takes ``(B, F, seq_len, blocks, channels)`` -- per video frame a
window of ``seq_len`` frames (``2 * window + 1``), each the stack of ``blocks`` wav2vec2 hidden
states of ``channels`` -- flattens it per frame in the order (window, block, channel), then
``Linear -> ReLU -> Linear -> ReLU -> Linear`` to ``context_tokens * output_dim``, reshapes to
tokens and applies ``LayerNorm(output_dim)``. ``TokenProjector`` (``windows.py``) flattens
everything after the frame axis in the same order (``frame_windows`` gives (B, F, 2w+1, L, H)) and
computes the same layers, held in an ``nn.Sequential``: only the key names differ, and
:data:`RELEASED_TO_ZOO` is that difference, as data, in one place.

Which wav2vec2 hidden states: the released ``preprocess_audio`` stacks ``hidden_states[1:]``,
every transformer layer's output and not the CNN projection -- the ``wav2vec2`` encoder's
``layers: all``. :func:`check_encoder_agrees` compares an encoder config with the part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from memo_zoo.errors import MemoZooError
from memo_zoo.model.released.folder import (
    load_strict, part_weights_file, read_part_config, read_part_state, resolve_release,
)
from memo_zoo_plugins.audio_encoder.windows import TokenProjector

PART = "audio_proj"

# released key prefix -> TokenProjector key prefix (mlp.1 and mlp.3 are the parameterless ReLUs)
RELEASED_TO_ZOO: dict[str, str] = {"proj1.": "mlp.0.", "proj2.": "mlp.2.", "proj3.": "mlp.4.", "norm.": "norm."}
ZOO_TO_RELEASED: dict[str, str] = {zoo: released for released, zoo in RELEASED_TO_ZOO.items()}


def to_zoo_keys(state: Mapping[str, Any]) -> dict[str, Any]:
    """A released ``audio_proj`` state dict under ``TokenProjector`` names (unknown keys kept as they are)."""
    return {_swap(key, RELEASED_TO_ZOO): value for key, value in state.items()}


def to_released_keys(state: Mapping[str, Any]) -> dict[str, Any]:
    """A ``TokenProjector`` state dict under the released names, e.g. to write a release folder."""
    return {_swap(key, ZOO_TO_RELEASED): value for key, value in state.items()}


def _swap(key: str, table: Mapping[str, str]) -> str:
    for source, target in table.items():
        if key.startswith(source):
            return target + key[len(source):]
    return key


def input_features(config: Mapping[str, Any]) -> int:
    """Flattened window size per frame: seq_len * blocks * channels."""
    return int(config["seq_len"]) * int(config["blocks"]) * int(config["channels"])


def build_token_projector(config: Mapping[str, Any]) -> TokenProjector:
    """An untrained projector shaped by the part config (``read_part_config(folder, "audio_proj")``)."""
    return TokenProjector(in_features=input_features(config), hidden=int(config["intermediate_dim"]),
                          token_count=int(config["context_tokens"]), token_dim=int(config["output_dim"]))


def load_token_projector(release: str | Path) -> tuple[TokenProjector, dict[str, Any]]:
    """``(projector, part config)`` of a release (a folder, or a hub id in the local HF cache);
    weights loaded strictly, in eval mode."""
    folder = resolve_release(release)
    config = read_part_config(folder, PART)
    module = build_token_projector(config)
    load_strict(module, read_part_state(folder, PART), str(part_weights_file(folder, PART)), rename=RELEASED_TO_ZOO)
    return module.eval(), config


def check_encoder_agrees(part: Mapping[str, Any], *, source: str, token_count: int, token_dim: int, window: int,
                         layer_count: int, hidden_size: int, hidden: int) -> None:
    """Refuse an encoder whose shapes differ from the released projector's, naming each field:
    ``token_count``/``context_tokens``, ``token_dim``/``output_dim``, ``2 * window + 1``/``seq_len``,
    the number of stacked layers/``blocks``, the backbone width/``channels``, ``hidden``/``intermediate_dim``."""
    pairs = (("token_count", token_count, "context_tokens"), ("token_dim", token_dim, "output_dim"),
             ("2 * window + 1", 2 * window + 1, "seq_len"), ("number of layers", layer_count, "blocks"),
             ("wav2vec2 hidden size", hidden_size, "channels"), ("hidden", hidden, "intermediate_dim"))
    wrong = [f"{name} {ours} but the release's {theirs} is {part[theirs]}" for name, ours, theirs in pairs
             if int(part[theirs]) != int(ours)]
    if wrong:
        raise MemoZooError(f"wav2vec2 audio encoder: its projector comes from {source}, which does not fit this "
                           f"encoder: {'; '.join(wrong)}")
