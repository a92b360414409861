"""``MemoNet``: MEMO's network (spec §1) -- Reference Net + Diffusion Net + image-token projector.

Per clip of B videos (T6):

1. ``tokens = net.project_image(embedding)``: image embedding (B, E) -> (B, K, cross_dim) (A4;
   §10: a 512-d face embedding -> 4 tokens of 768).
2. ``reference = net.encode_reference(ref_latents, tokens)``: the Reference Net on the clean
   reference latent, (B, c, h, w) -> attn1 states, once per video (A2).
3. ``state = net.motion_state(motion_latents, tokens, state)``: the Reference Net on the clean
   motion frames (B, Fm, c, h, w); its per-site outputs update the temporal contexts, once per clip
   (T2, T6). ``state`` starts as ``net.new_state(B)``.
4. ``velocity = net(latents, t, tokens, audio_tokens, emotion, reference, state)`` at every
   denoising step, reading ``reference`` and ``state`` without changing them.

Audio tokens arrive already projected (A5: the audio encoder is its own slot). New modules start
at zero (A6), so a fresh net without reference is the plain UNet it was built from.

The net is given factories for its temporal and audio modules (``memo_zoo.slots.temporal.
TemporalFactory``, ``memo_zoo.slots.audio_fusion.AudioFusionFactory``), never the registry or the
recipe schema: the code that reads the recipe makes them (``memo_zoo.recipe.components``).

This is a plain ``nn.Module`` with its own ``save_pretrained`` / ``from_pretrained``, not a diffusers
``ModelMixin``: rebuilding it needs those factories (its temporal and audio modules are
components), which ``ConfigMixin``'s JSON-only constructor arguments cannot express. A
checkpoint is a folder with ``memo_net.json`` (network + component configs, each component with
its ``kind``) and ``memo_net.safetensors`` (every parameter).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from pydantic import BaseModel, ValidationError
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from memo_zoo.errors import MemoZooError
from memo_zoo.model.animatediff_init import AnimateDiffReport, OutputInit, init_from_animatediff
from memo_zoo.model.diffusion_net import DiffusionNet, MemoState
from memo_zoo.model.reference_net import ReferenceNet, ReferenceOutput, describe_mismatch, read_sd15_unet
from memo_zoo.recipe.network import RELEASED, NetworkConfig
from memo_zoo.slots.audio_fusion import AudioFusionFactory
from memo_zoo.slots.temporal import TemporalFactory
from memo_zoo.weights import resolve_weights

CONFIG_FILE = "memo_net.json"
WEIGHTS_FILE = "memo_net.safetensors"
FORMAT = "memo-zoo/memo-net"
FORMAT_VERSION = 1
ZOO_FAMILY = "memo_zoo"  # memo_net.json without "family": the zoo's own MemoNet


class ImageProjector(nn.Module):
    """Image embedding (B, E) -> K cross-attention tokens (B, K, D) (A4, §10): a Linear to K*D then
    a LayerNorm per token, IP-Adapter style, so the tokens have the scale cross-attention expects."""

    def __init__(self, embed_dim: int, tokens: int, width: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.width = width
        self.proj = nn.Linear(embed_dim, tokens * width)
        self.norm = nn.LayerNorm(width)

    def forward(self, embedding: Tensor) -> Tensor:
        if embedding.dim() != 2 or embedding.shape[1] != self.proj.in_features:
            raise ValueError(f"image embedding must be (B, {self.proj.in_features}); got {tuple(embedding.shape)}")
        return self.norm(self.proj(embedding).reshape(embedding.shape[0], self.tokens, self.width))


class SlotFactories(Protocol):
    """What ``MemoNet.from_pretrained`` is given to rebuild a saved net's components:
    ``factories(slot, config)`` validates a slot's config (``{kind: ..., **options}`` or a config
    object) and returns that component's factory. ``memo_zoo.recipe.components.slot_factories``
    makes one from the registry."""

    def __call__(self, slot: str, config: BaseModel | Mapping[str, Any]) -> Any: ...


class MemoNet(nn.Module):
    """MEMO's network; see the module docstring for the per-clip flow and shapes."""

    def __init__(self, network: NetworkConfig, temporal: TemporalFactory, audio_fusion: AudioFusionFactory) -> None:
        super().__init__()
        self.network_config = network
        self.temporal_config = temporal.config
        self.audio_fusion_config = audio_fusion.config
        self.reference_net = ReferenceNet(network)
        self.diffusion_net = DiffusionNet(network, temporal, audio_fusion)
        self.image_proj = ImageProjector(network.image_embed_dim, network.image_tokens, network.cross_attention_dim)

    # ---- per-clip flow ---------------------------------------------------------------------

    def project_image(self, embedding: Tensor) -> Tensor:
        """(B, image_embed_dim) -> (B, image_tokens, cross_attention_dim) (A4)."""
        return self.image_proj(embedding)

    def encode_reference(self, ref_latents: Tensor, image_tokens: Tensor) -> ReferenceOutput:
        """Reference Net on the clean reference latents (B, c, h, w) with tokens (B, K, D) (A2)."""
        return self.reference_net(ref_latents, image_tokens)

    def new_state(self, batch: int) -> MemoState:
        """Empty temporal contexts for ``batch`` videos."""
        return self.diffusion_net.new_state(batch)

    def motion_state(self, motion_latents: Tensor, image_tokens: Tensor, state: MemoState | None = None) -> MemoState:
        """Fold the clean motion frames (B, Fm, c, h, w) into ``state`` (T2, T6); returns a new state.

        The Reference Net runs on the B*Fm frames with each video's image tokens (B, K, D); its
        per-site outputs, reshaped to (B, Fm, C, H, W), update each site's temporal context.
        """
        if motion_latents.dim() != 5:
            raise ValueError(f"motion latents must be (B, Fm, c, h, w); got {tuple(motion_latents.shape)}")
        b, fm = motion_latents.shape[:2]
        frames = self.reference_net(motion_latents.reshape(b * fm, *motion_latents.shape[2:]),
                                    image_tokens.repeat_interleave(fm, dim=0))
        features = [block.reshape(b, fm, *block.shape[1:]) for block in frames.blocks]
        return self.diffusion_net.update_state(self.new_state(b) if state is None else state, features)

    def merge_states(self, parts: Sequence[tuple[Tensor, MemoState]], batch: int) -> MemoState | None:
        """``DiffusionNet.merge_states``: one state from the states of disjoint groups of videos."""
        return self.diffusion_net.merge_states(parts, batch)

    def forward(
        self,
        latents: Tensor,
        timestep: Tensor | float,
        image_tokens: Tensor,
        audio_tokens: Tensor | None = None,
        emotion: Tensor | None = None,
        reference: ReferenceOutput | Mapping[str, Tensor] | None = None,
        state: MemoState | None = None,
        reference_mask: Tensor | None = None,
    ) -> Tensor:
        """Velocity (B, F, c, h, w); arguments as ``DiffusionNet.forward``. With
        ``network.preconditioning = linear_skip`` the UNet predicts the part of the velocity that a
        linear function of ``latents`` cannot (see ``preconditioning``)."""
        out = self.diffusion_net(latents, timestep, image_tokens, audio_tokens, emotion, reference, state,
                                 reference_mask)
        if self.network_config.preconditioning == "none":
            return out
        c_skip, c_out = preconditioning(timestep, self.network_config.data_std, latents)
        return c_skip * latents + c_out * out

    # ---- training switches -----------------------------------------------------------------

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in backward: diffusers' blocks and every MemoBlock's audio and
        temporal modules, in both nets (works under bf16 autocast: checkpointing replays it)."""
        self.reference_net.unet.enable_gradient_checkpointing()
        self.diffusion_net.unet.enable_gradient_checkpointing()

    def disable_gradient_checkpointing(self) -> None:
        self.reference_net.unet.disable_gradient_checkpointing()
        self.diffusion_net.unet.disable_gradient_checkpointing()

    # ---- pretrained weights ----------------------------------------------------------------

    def init_from_sd15(self, unet_dir: str | Path) -> None:
        """Load SD1.5 UNet weights from a LOCAL diffusers folder into both nets' spatial parts (A6).

        ``unet_dir`` is a pipeline folder with ``unet/`` or the unet folder itself. The geometry
        in its ``config.json`` must equal this net's; temporal, audio and image-projector weights
        are left as they are.
        """
        state = read_sd15_unet(unet_dir, self.network_config)
        self.reference_net.load_spatial_state_dict(state, str(unet_dir))
        self.diffusion_net.load_spatial_state_dict(state, str(unet_dir))

    def init_from_animatediff(self, path: str | Path, output: OutputInit = "copy") -> AnimateDiffReport:
        """Load a LOCAL AnimateDiff motion-module checkpoint into the temporal modules (A6).

        ``path``: an original-release state dict (.ckpt/.pth/.safetensors) or a diffusers
        MotionAdapter folder. Copies q/k/v, the matching norm and (``output="copy"``) the output
        projection; the returned report lists what was loaded, what the checkpoint had in excess
        and what kept its init. See ``memo_zoo.model.animatediff_init``.
        """
        return init_from_animatediff(self, path, output)

    def configs(self) -> dict[str, Any]:
        """Everything needed to rebuild this net, as JSON-ready data."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "network": self.network_config.model_dump(mode="json"),
            "temporal": self.temporal_config.model_dump(mode="json"),
            "audio_fusion": self.audio_fusion_config.model_dump(mode="json"),
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``memo_net.json`` + ``memo_net.safetensors`` into ``directory`` (created)."""
        return save_net_folder(self, directory)

    def load_weights(self, path: str | Path, exclude: tuple[str, ...] = ()) -> None:
        """Load a ``memo_net.safetensors`` strictly; a mismatch raises ``MemoZooError`` naming every
        missing, unexpected and mis-shaped parameter.

        ``exclude``: name prefixes left out on both sides (they keep this net's values), e.g. the
        audio and temporal modules when starting stage 2 of another variant from a shared stage 1.
        """
        path = resolve_weights(path, "MEMO network weights (memo_net.safetensors)")
        state = {k: v for k, v in read_weights(path).items() if not k.startswith(exclude)}
        own = {k: v for k, v in self.state_dict().items() if not k.startswith(exclude)}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [f"{k}: {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} here"
                  for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
        problems = describe_mismatch(missing, unexpected, shapes)
        if problems:
            raise MemoZooError(f"checkpoint {path} does not match the network built from the given configs:\n{problems}")
        self.load_state_dict(state, strict=not exclude)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        factories: SlotFactories,
        network: NetworkConfig | Mapping[str, Any] | None = None,
        temporal: BaseModel | Mapping[str, Any] | None = None,
        audio_fusion: BaseModel | Mapping[str, Any] | None = None,
    ) -> "MemoNet":
        """Rebuild a saved net (``load_network``: a saved ``memo_released`` net comes back as the
        ``ReleasedMemoNet`` it was). ``factories(slot, config)`` turns the saved (or given) temporal
        and audio_fusion configs into factories (``memo_zoo.recipe.components.slot_factories``).
        Configs given here replace the saved ones; the weights must then still fit, else
        ``MemoZooError`` names what does not."""
        return load_network(directory, factories, network, temporal, audio_fusion)


def load_network(directory: str | Path, factories: SlotFactories,
                 network: NetworkConfig | Mapping[str, Any] | None = None,
                 temporal: BaseModel | Mapping[str, Any] | None = None,
                 audio_fusion: BaseModel | Mapping[str, Any] | None = None) -> Any:
    """A saved network of either family (``memo_net.json``'s ``family``: absent = the zoo's
    ``MemoNet``, ``memo_released`` = ``memo_zoo.model.released.memo_net.ReleasedMemoNet``) with its
    weights; the one loader generation and training use, so no caller branches on the family."""
    directory = resolve_weights(directory, "MEMO network checkpoint", expect=(CONFIG_FILE, WEIGHTS_FILE))
    saved = read_config(directory / CONFIG_FILE)
    family = saved.get("family", ZOO_FAMILY)
    try:
        if family == RELEASED:
            from memo_zoo.model.released.memo_net import ReleasedMemoNet

            net = ReleasedMemoNet.from_saved(saved, factories, str(directory / CONFIG_FILE), network, temporal,
                                             audio_fusion)
        elif family == ZOO_FAMILY:
            network_config = network_from(saved["network"] if network is None else network)
            net = MemoNet(network_config,
                          factories("temporal", saved["temporal"] if temporal is None else temporal),
                          factories("audio_fusion", saved["audio_fusion"] if audio_fusion is None else audio_fusion))
        else:
            raise MemoZooError(f"unknown network family {family!r} (known: {ZOO_FAMILY}, {RELEASED})")
    except MemoZooError as error:
        raise MemoZooError(f"cannot build the network of {directory / CONFIG_FILE} (with the given configs): "
                           f"{error}") from None
    net.load_weights(directory / WEIGHTS_FILE)
    return net


def read_config(path: str | Path) -> dict[str, Any]:
    """A ``memo_net.json`` as a dict with ``network``, ``temporal`` and ``audio_fusion`` objects;
    ``MemoZooError`` naming the file when it is missing, unreadable, not JSON or not this format
    (a damaged file must stop a load, not fall back to some default architecture)."""
    path = Path(path)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MemoZooError(f"{path}: not found; a MemoNet folder holds {CONFIG_FILE} and {WEIGHTS_FILE}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MemoZooError(f"{path}: cannot be read ({error})") from None
    except ValueError as error:
        raise MemoZooError(f"{path}: cannot be read as JSON ({error}); the file is damaged") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("version") != FORMAT_VERSION:
        found = saved if not isinstance(saved, dict) else f"format {saved.get('format')!r}, version {saved.get('version')!r}"
        raise MemoZooError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} config ({found})")
    broken = [key for key in ("network", "temporal", "audio_fusion") if not isinstance(saved.get(key), dict)]
    if broken:
        raise MemoZooError(f"{path}: {', '.join(broken)} missing or not an object; the file is damaged")
    return saved


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a ``.safetensors`` file; ``MemoZooError`` naming the file when it is
    truncated or not safetensors (safetensors' own errors do not say which file)."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise MemoZooError(f"{path}: cannot be read as safetensors ({error}); the file is damaged or "
                           "truncated (an interrupted copy?)") from None


def preconditioning(timestep: Tensor | float, data_std: float, like: Tensor) -> tuple[Tensor, Tensor]:
    """``(c_skip, c_out)`` of the linear-skip velocity, broadcast to ``like`` (B, F, c, h, w).

    For z_t = (1 - t) z0 + t eps (L1) with z0 of variance s = data_std^2 and eps ~ N(0, 1), the
    velocity v = eps - z0 has Cov(v, z_t) = t - (1 - t) s and Var(z_t) = (1 - t)^2 s + t^2, so the
    least-squares linear predictor of v from z_t is c_skip z_t with
    c_skip = (t - (1 - t) s) / ((1 - t)^2 s + t^2), and what it leaves has variance
    c_out^2 = s / ((1 - t)^2 s + t^2) (using (1 - t) + t = 1). The network then predicts a
    residual of unit variance at every t, the idea of EDM's preconditioning (Karras et al. 2022)
    written for rectified flow.
    """
    t = torch.as_tensor(timestep, dtype=torch.float32, device=like.device)
    t = t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else t
    s = float(data_std) ** 2
    denominator = (1 - t) ** 2 * s + t ** 2
    return ((t - (1 - t) * s) / denominator).to(like.dtype), torch.sqrt(s / denominator).to(like.dtype)


def network_from(network_config: NetworkConfig | Mapping[str, Any]) -> NetworkConfig:
    """``network_config`` as a validated ``NetworkConfig``; ``MemoZooError`` when it is not one."""
    if isinstance(network_config, NetworkConfig):
        return network_config
    try:
        return NetworkConfig.model_validate(dict(network_config))
    except ValidationError as error:
        raise MemoZooError(f"invalid network config:\n{error}") from None


def save_net_folder(net: nn.Module, directory: str | Path) -> Path:
    """A network folder of either family: ``memo_net.json`` (``net.configs()``) and
    ``memo_net.safetensors`` (every parameter and persistent buffer)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous() for name, tensor in net.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(net.configs(), indent=2) + "\n")
    return directory


def build_network(model: Any, factories: SlotFactories) -> Any:
    """The network a recipe's ``model`` section (``network``, ``temporal``, ``audio_fusion``) asks
    for, of the family its ``network.preset`` names: the zoo's ``MemoNet`` (random weights), or
    the released network (``memo_released``: the release's weights when ``network.weights`` is
    set). The one builder of generation and training, so no caller branches on the family."""
    network = network_from(model.network)
    if network.preset == RELEASED:
        from memo_zoo.model.released.memo_net import ReleasedMemoNet

        return ReleasedMemoNet.build(network, model.temporal, model.audio_fusion, factories)
    missing = [f"model.{slot}" for slot in ("temporal", "audio_fusion") if getattr(model, slot, None) is None]
    if missing:
        raise MemoZooError(f"the network needs {' and '.join(missing)} in the recipe")
    return MemoNet(network, factories("temporal", model.temporal), factories("audio_fusion", model.audio_fusion))


def resolved_model(model: Any, factories: SlotFactories) -> Any:
    """``model`` as the network will be built from it, for comparing with a checkpoint: a
    ``memo_released`` network gets its geometry from the release's files and its temporal /
    audio_fusion configs with the options the release implies; a zoo network is ``model`` itself."""
    network = network_from(model.network)
    if network.preset != RELEASED:
        return model
    from types import SimpleNamespace

    from memo_zoo.model.released.memo_net import released_component_configs, resolve_released_network

    resolved = resolve_released_network(network)
    temporal, audio_fusion = released_component_configs(resolved, model.temporal, model.audio_fusion)
    return SimpleNamespace(network=resolved.network, temporal=factories("temporal", temporal).config,
                           audio_fusion=factories("audio_fusion", audio_fusion).config)


def build_memo_net(network_config: NetworkConfig | Mapping[str, Any], temporal: TemporalFactory,
                   audio_fusion: AudioFusionFactory) -> MemoNet:
    """A fresh ``MemoNet`` with temporal and audio modules from these factories (one of each per
    site; ``memo_zoo.recipe.components.component_factory`` makes them from a recipe's configs)."""
    return MemoNet(network_from(network_config), temporal, audio_fusion)
