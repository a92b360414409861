"""The GPU fast path of generation (issue 19): switches that make a video faster to sample, each
equal to the plain path within a stated tolerance (``tests/unit/test_fast_path.py``).

``FastPathConfig`` holds them (this module imports no torch, so recipes validate without it);
``apply_fast_path(model, config)`` applies them to a loaded ``GeneratorModel`` or to a network of
either family (the zoo's ``MemoNet``, the released ``ReleasedMemoNet``):

- ``cache_reference_kv``: the read side of reference attention (A3) keeps the keys and values it
  projected from the reference states, made once per video (A2), instead of projecting them
  again at every denoising step (``memo_zoo.model.reference_attention``,
  ``memo_zoo.model.released.spatial``). Exact for the zoo's network; for the released network the
  cached path projects [own ; reference] tokens in two pieces, equal up to float rounding. Under
  ``torch.compile`` the cache is not consulted (its lookup would break the graph).
- ``channels_last``: the UNets' 4-D convolution weights in channels-last memory, so cuDNN runs its
  NHWC kernels (tensor cores under bf16); the activations follow the weights' layout.
- ``compile``: ``torch.compile`` of the Diffusion Net (the network that runs at every step); when
  compiling or a compiled call fails while the eager call succeeds, it warns once and runs eager.
  Both families trace as one graph (the released spatial blocks mask their unconditional rows
  instead of splitting them off while compiling).
- ``decode_chunk``: frames per VAE decode (and re-encode) call; read by the sampler.

Softmax attention everywhere already goes through ``F.scaled_dot_product_attention`` (fused
kernels on a GPU), and generation autocasts to bf16 on CUDA by default (``GenerateConfig.dtype``);
neither needs a switch here.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


APPLIED = "_memo_fast_path"
"""Attribute of a network holding the ``FastPathConfig`` last applied to it."""


class FastPathConfig(BaseModel):
    """Generation speed switches (issue 19); each keeps the output within its tested tolerance."""

    model_config = ConfigDict(extra="forbid")

    cache_reference_kv: bool = Field(
        True, description="Project the reference states' attention keys/values once per video instead of at every "
                          "denoising step (A2, A3). Exact on the zoo's network; on memo_released equal up to float "
                          "rounding (tested at 1e-5). Costs the memory of those keys/values (up to 4 reference "
                          "sets per site). Not consulted inside a torch.compile'd net.")
    channels_last: bool = Field(
        False, description="Store the UNets' convolution weights channels-last (NHWC), the layout GPU "
                           "convolution kernels prefer under bf16; tested equal to the plain layout at 1e-5.")
    compile: bool = Field(
        False, description="torch.compile the Diffusion Net; a failure to compile warns once and runs eager. The "
                           "first steps are slower while it compiles.")
    compile_backend: str = Field(
        "inductor", min_length=1, description="torch.compile backend (inductor on a GPU; eager / aot_eager check "
                                              "the wrapper cheaply).")
    compile_mode: Optional[Literal["default", "reduce-overhead", "max-autotune",
                                   "max-autotune-no-cudagraphs"]] = Field(
        None, description="torch.compile mode; null = torch's default.")
    compile_dynamic: Optional[bool] = Field(
        None, description="torch.compile dynamic shapes: null = torch decides (recompiles once for the last, "
                          "shorter clip), false = one graph per shape.")
    decode_chunk: int = Field(
        8, ge=1, description="Frames per VAE decode (and re-encode) call: bounds the decoder's activation memory at "
                             "512 px; larger is faster where memory allows.")


class CompiledForward:
    """A module's forward through ``torch.compile``, falling back to eager for good (warned once)
    when a compiled call fails and the eager call of the same arguments succeeds; when the eager
    call fails too, the inputs were at fault and its error is raised, compilation kept."""

    def __init__(self, eager: Callable[..., Any], compiled: Callable[..., Any], name: str) -> None:
        self.eager = eager
        self.compiled = compiled
        self.name = name
        self.failure: Exception | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failure is not None:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 -- any compiler failure falls back to eager
            out = self.eager(*args, **kwargs)
            self.failure = error
            warnings.warn(f"torch.compile of {self.name} failed ({type(error).__name__}: "
                          f"{_first_line(error)}); running it eager", RuntimeWarning, stacklevel=2)
            return out


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


def compile_module(module: Any, config: FastPathConfig, name: str) -> bool:
    """Route ``module``'s forward through ``torch.compile`` (see ``CompiledForward``); True when
    wrapped, False (warned) when ``torch.compile`` itself refuses. Parameters and the state dict
    are untouched (the forward is replaced on the instance only); ``eager_forward`` undoes it."""
    import torch

    eager = module.forward
    if isinstance(eager, CompiledForward):
        return True
    try:
        compiled = torch.compile(eager, backend=config.compile_backend, mode=config.compile_mode,
                                 dynamic=config.compile_dynamic)
    except Exception as error:  # noqa: BLE001 -- an unknown backend, a Python without dynamo, ...
        warnings.warn(f"torch.compile of {name} is not available ({type(error).__name__}: {_first_line(error)}); "
                      "running it eager", RuntimeWarning, stacklevel=2)
        return False
    module.forward = CompiledForward(eager, compiled, name)
    return True


def eager_forward(module: Any) -> None:
    """Undo ``compile_module``: the class's own forward again."""
    if isinstance(module.__dict__.get("forward"), CompiledForward):
        del module.forward


def set_reference_kv_cache(net: Any, enabled: bool) -> int:
    """Turn the reference K/V cache of every read site of ``net`` (either family, or its Diffusion
    Net alone) on or off, dropping what was cached; returns how many sites there are."""
    from diffusers.models.attention_processor import Attention

    from memo_zoo.model.reference_attention import MemoAttnProcessor
    from memo_zoo.model.released.spatial import ReleasedTransformerBlock

    sites = 0
    for module in getattr(net, "diffusion_net", net).modules():  # the Reference Net only writes
        if isinstance(module, Attention) and isinstance(module.processor, MemoAttnProcessor) \
                and module.processor.role == "read":
            module.processor.cache_kv = enabled
            module.processor.clear_cache()
            sites += 1
        elif isinstance(module, ReleasedTransformerBlock) and not module.final:
            module.cache_reference_kv = enabled
            module.clear_cache()
            sites += 1
    return sites


def apply_fast_path(model: Any, config: FastPathConfig) -> Any:
    """Apply ``config`` to ``model`` (a ``GeneratorModel``, or a network of either family) in place
    and return it. Switches that are off are undone, so applying another config replaces the first;
    applying the config already applied does nothing (``generate_video`` may call it per video).

    Call after the weights are loaded; moving the model to a device afterwards keeps the memory
    format, the compiled forward and the (device-keyed) cache.
    """
    import torch

    if not isinstance(config, FastPathConfig):
        raise TypeError(f"apply_fast_path needs a FastPathConfig, got {type(config).__name__}")
    net = getattr(model, "net", model)
    diffusion = getattr(net, "diffusion_net", None)
    if diffusion is None or not isinstance(net, torch.nn.Module):
        raise TypeError(f"apply_fast_path: {type(net).__name__} is not a MemoNet or ReleasedMemoNet "
                        "(no diffusion_net)")
    if hasattr(model, "fast_path") and model is not net:
        model.fast_path = config  # a GeneratorModel records what it runs with
    if net.__dict__.get(APPLIED) == config:
        return model  # already so: a second video keeps the compiled graphs
    set_reference_kv_cache(net, config.cache_reference_kv)
    # Module.to(memory_format=...) converts the 4-D parameters (conv weights) only.
    net.to(memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    eager_forward(diffusion)
    if config.compile:
        compile_module(diffusion, config, f"{type(net).__name__}.diffusion_net")
    net.__dict__[APPLIED] = config
    return model
