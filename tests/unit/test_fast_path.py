"""The GPU fast path (issue 19, ``memo_zoo.generate.fast_path``), each switch checked on CPU against
the plain path, on the tiny zoo network (``tests.unit.test_generate.make_model``) and the tiny
released network (the golden folder's ``tiny`` release).

Tolerances, and why:

- softmax attention: every attention of both families runs ``F.scaled_dot_product_attention``;
  replaced by an explicit float32 softmax(QK^T / sqrt(d)) V, the velocity moves by at most
  ``SDPA_ATOL`` (float32 summation order only);
- ``cache_reference_kv``: exact (0) on the zoo network (the very tensors projected before are
  reused); on the released network within ``SDPA_ATOL`` (keys projected in two pieces), and it
  still matches golden case d at the golden tolerance;
- ``channels_last``: within ``LAYOUT_ATOL`` (convolutions sum in another order);
- ``compile`` (backend ``eager``: dynamo's graph capture without a code generator, fast on CPU):
  exact; a failing compiler warns once and the eager result comes back;
- bf16 autocast on CPU: finite, and every velocity within ``BF16_RTOL`` of the float32 run's
  largest velocity (bf16 keeps 8 mantissa bits, ~0.4 % per rounding; measured ~1 %).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from pydantic import ValidationError
from torch import nn
from torch._dynamo import register_backend

import memo_zoo.model.reference_attention as reference_attention
from memo_zoo.generate.fast_path import (APPLIED, CompiledForward, FastPathConfig, apply_fast_path, compile_module,
                                         eager_forward, set_reference_kv_cache)
from memo_zoo.generate.loading import load_generator_model
from memo_zoo.generate.warning import GenerationWarning
from memo_zoo.model.memo_net import build_network
from memo_zoo.model.reference_attention import CACHE_ENTRIES, MemoAttnProcessor
from memo_zoo.model.released.spatial import ReleasedTransformerBlock
from memo_zoo.recipe.loader import validate_document
from memo_zoo.recipe.network import RELEASED, NetworkConfig
from memo_zoo_plugins.audio_fusion.configs import CrossAttentionFusionConfig
from memo_zoo_plugins.audio_fusion.cross_attention import CrossAttentionFusion
from memo_zoo_plugins.temporal.configs import SelfAttentionConfig
from memo_zoo_plugins.temporal.self_attention import SelfAttentionTemporal
from tests.unit.released.helpers import GOLDEN, TINY, stream_case_d, tiny_diffusion_net, tiny_reference_net
from tests.unit.released.zoo_factories import factories as released_factories
from tests.unit.test_generate import (REGISTRY, config, make_model, make_recipe, portrait, run, speech_like,
                                     write_wav)

pytestmark = pytest.mark.usefixtures("one_thread")

SDPA_ATOL = 1e-5
LAYOUT_ATOL = 1e-5
BF16_RTOL = 0.03
STEPS = 3


# ---- the two tiny networks and a driver of their common API ---------------------------------------


@pytest.fixture
def zoo():
    return make_model().net.eval()


@pytest.fixture(scope="module")
def released_weights():
    network = NetworkConfig(preset=RELEASED, weights=str(TINY), released_quirks=True)
    net = build_network(SimpleNamespace(network=network, temporal=None, audio_fusion=None), released_factories)
    return net.state_dict(), network


@pytest.fixture
def released(released_weights):
    state, network = released_weights
    net = build_network(SimpleNamespace(network=network, temporal=None, audio_fusion=None), released_factories)
    net.load_state_dict(state)
    return net.requires_grad_(False).eval()


NETS = ["zoo", "released"]


def drive(net: nn.Module, steps: int = STEPS, frames: int = 4, seed: int = 0) -> list[torch.Tensor]:
    """What sampling does with a network (``MemoNet``'s API, both families): the reference and the
    motion state once, then ``steps`` velocities of two videos, the second without reference (CFG)."""
    cfg = net.network_config
    g = torch.Generator().manual_seed(seed)
    side = 2 * 2 ** (len(cfg.block_out_channels) - 1)
    c, b = cfg.latent_channels, 2
    tokens = net.project_image(torch.randn(b, cfg.image_embed_dim, generator=g))
    reference = net.encode_reference(torch.randn(b, c, side, side, generator=g), tokens)
    state = net.motion_state(torch.randn(b, 2, c, side, side, generator=g), tokens)
    audio = torch.randn(b, frames, cfg.audio_tokens, cfg.audio_dim, generator=g)
    mask = torch.tensor([True, False])
    return [net(torch.randn(b, frames, c, side, side, generator=g), 1.0 - k / steps, tokens, audio, None, reference,
                state, mask) for k in range(steps)]


def zoo_readers(net: nn.Module) -> list[MemoAttnProcessor]:
    return [m.processor for m in net.modules() if isinstance(m, Attention)
            and isinstance(m.processor, MemoAttnProcessor) and m.processor.role == "read"]


def released_blocks(net: nn.Module) -> list[ReleasedTransformerBlock]:
    """The blocks that read a reference: the Diffusion Net's."""
    return [m for m in net.diffusion_net.modules() if isinstance(m, ReleasedTransformerBlock)]


def assert_all_close(got: list[torch.Tensor], want: list[torch.Tensor], atol: float) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


# ---- the config ----------------------------------------------------------------------------------


def test_config_defaults_and_refusals():
    default = FastPathConfig()
    assert default.cache_reference_kv and not default.compile and not default.channels_last
    assert default.decode_chunk == 8  # sampling's DECODE_CHUNK until then
    with pytest.raises(ValidationError, match="decode_chunk"):
        FastPathConfig(decode_chunk=0)
    with pytest.raises(ValidationError, match="compile_mod"):
        FastPathConfig(compile_mod="max-autotune")
    with pytest.raises(ValidationError, match="compile_mode"):
        FastPathConfig(compile_mode="fastest")
    for name, field in FastPathConfig.model_fields.items():
        assert field.description, name


def test_the_config_module_imports_no_torch():
    code = "import sys, memo_zoo.generate.fast_path; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_apply_refuses_what_is_not_a_network():
    with pytest.raises(TypeError, match="FastPathConfig"):
        apply_fast_path(nn.Linear(2, 2), {"compile": True})
    with pytest.raises(TypeError, match="no diffusion_net"):
        apply_fast_path(nn.Linear(2, 2), FastPathConfig())


# ---- softmax attention is scaled-dot-product attention everywhere -------------------------------


def explicit_attention(calls: list[int]):
    """F.scaled_dot_product_attention written out in float32: softmax(QK^T * scale + mask) V."""

    def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **extra):
        assert dropout_p == 0.0 and not is_causal and not extra
        calls.append(1)
        scores = query.float() @ key.float().transpose(-2, -1) * (query.shape[-1] ** -0.5 if scale is None else scale)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
                else scores + attn_mask.float()
        return (scores.softmax(dim=-1) @ value.float()).to(query.dtype)

    return attention


@pytest.mark.parametrize("family", NETS)
def test_every_attention_layer_is_scaled_dot_product(family, request):
    """No diffusers Attention with the classic bmm processor: each runs AttnProcessor2_0 or ours."""
    net = request.getfixturevalue(family)
    layers = [m for m in net.modules() if isinstance(m, Attention)]
    assert layers
    for layer in layers:
        assert isinstance(layer.processor, (AttnProcessor2_0, MemoAttnProcessor)), type(layer.processor)


@pytest.mark.parametrize("family", NETS)
def test_the_networks_softmax_attention_equals_the_explicit_softmax(family, request, monkeypatch):
    net = request.getfixturevalue(family)
    with torch.inference_mode():
        fused = drive(net)
        calls: list[int] = []
        monkeypatch.setattr(F, "scaled_dot_product_attention", explicit_attention(calls))
        explicit = drive(net)
    assert calls, "no attention went through F.scaled_dot_product_attention"
    assert_all_close(fused, explicit, SDPA_ATOL)


def _perturbed(module: nn.Module) -> nn.Module:
    """Move the zero-initialised output projections (A6) off zero, so attention shows in the output."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return module.eval()


def test_the_baseline_modules_softmax_attention_equals_the_explicit_softmax(monkeypatch):
    """The temporal and audio kinds the two tiny networks do not use: self_attention (T7), cross_attention (E2)."""
    g = torch.Generator().manual_seed(0)
    temporal = _perturbed(SelfAttentionTemporal(SelfAttentionConfig(heads=2, motion_frames=3), 8))
    fusion = _perturbed(CrossAttentionFusion(CrossAttentionFusionConfig(heads=2), 8, 6))
    x, motion = torch.randn(2, 4, 8, 3, 3, generator=g), torch.randn(2, 3, 8, 3, 3, generator=g)
    video, audio = torch.randn(5, 9, 8, generator=g), torch.randn(5, 4, 6, generator=g)

    def outputs():
        with torch.inference_mode():
            ctx = temporal.update_context(temporal.new_context(2), motion)
            return [temporal(x, ctx), fusion(video, audio)[0]]

    fused = outputs()
    calls: list[int] = []
    monkeypatch.setattr(F, "scaled_dot_product_attention", explicit_attention(calls))
    assert len(calls) == 0
    assert_all_close(fused, outputs(), SDPA_ATOL)
    assert len(calls) == 2


# ---- reference K/V once per video ----------------------------------------------------------------


def count_projections(monkeypatch) -> list[str]:
    """Record every projection of the zoo's reference keys/values."""
    projections: list[str] = []
    original = reference_attention.reference_kv

    def counting(attn, reference, dtype):
        projections.append("kv")
        return original(attn, reference, dtype)

    monkeypatch.setattr(reference_attention, "reference_kv", counting)
    return projections


def test_zoo_reference_kv_cache_is_exact_and_projects_once_per_video(zoo, monkeypatch):
    sites = len(zoo_readers(zoo))
    projections = count_projections(monkeypatch)
    with torch.inference_mode():
        plain = drive(zoo)
    assert sites > 0 and len(projections) == sites * STEPS  # uncached: every step projects again
    projections.clear()
    apply_fast_path(zoo, FastPathConfig(cache_reference_kv=True))
    assert all(p.cache_kv for p in zoo_readers(zoo))
    with torch.inference_mode():
        cached = drive(zoo)
    assert len(projections) == sites  # once per read site for the whole video
    assert_all_close(cached, plain, 0.0)


def test_zoo_reference_kv_cache_follows_the_video_and_the_weights(zoo, monkeypatch):
    apply_fast_path(zoo, FastPathConfig(cache_reference_kv=True))
    sites = len(zoo_readers(zoo))
    projections = count_projections(monkeypatch)
    with torch.inference_mode():
        drive(zoo, steps=2)
        drive(zoo, steps=2)  # another video: new reference states
    assert len(projections) == 2 * sites
    assert all(not p._kv for p in zoo_readers(zoo))  # a finished video's keys/values are let go
    projections.clear()
    with torch.inference_mode():
        net = zoo
        cfg = net.network_config
        tokens = net.project_image(torch.randn(2, cfg.image_embed_dim))
        side = 2 * 2 ** (len(cfg.block_out_channels) - 1)
        reference = net.encode_reference(torch.randn(2, cfg.latent_channels, side, side), tokens)
        latents = torch.randn(2, 4, cfg.latent_channels, side, side)
        before = net(latents, 0.5, tokens, None, None, reference)
        with torch.no_grad():
            for module in zoo.modules():
                if isinstance(module, Attention) and module.processor in zoo_readers(zoo):
                    module.to_k.weight.mul_(1.5)  # changed weights, same reference states
        after = net(latents, 0.5, tokens, None, None, reference)
        set_reference_kv_cache(zoo, False)
        uncached = net(latents, 0.5, tokens, None, None, reference)
    assert len(projections) == 3 * sites  # new states, changed weights, and the uncached call
    assert not torch.equal(before, after)
    assert_all_close([after], [uncached], 0.0)


def test_zoo_reference_kv_cache_keeps_a_few_sets_of_states(zoo, monkeypatch):
    """Two branches (a guidance interval's guided and conditional rows) alternating over the steps
    each project once; past CACHE_ENTRIES sets the oldest is projected again."""
    apply_fast_path(zoo, FastPathConfig(cache_reference_kv=True))
    sites = len(zoo_readers(zoo))
    projections = count_projections(monkeypatch)
    cfg = zoo.network_config
    side = 2 * 2 ** (len(cfg.block_out_channels) - 1)
    with torch.inference_mode():
        tokens = zoo.project_image(torch.randn(1, cfg.image_embed_dim))
        states = [zoo.encode_reference(torch.randn(1, cfg.latent_channels, side, side), tokens)
                  for _ in range(CACHE_ENTRIES + 1)]
        latents = torch.randn(1, 2, cfg.latent_channels, side, side)
        for _ in range(3):
            for reference in states[:2]:
                zoo(latents, 0.5, tokens, None, None, reference)
        assert len(projections) == 2 * sites
        for reference in states:
            zoo(latents, 0.5, tokens, None, None, reference)
        assert len(projections) == (2 + CACHE_ENTRIES - 1) * sites
        zoo(latents, 0.5, tokens, None, None, states[0])  # pushed out by the fifth
        assert len(projections) == (2 + CACHE_ENTRIES) * sites
    assert all(len(p._kv) == CACHE_ENTRIES for p in zoo_readers(zoo))


def test_zoo_reference_kv_cache_is_off_while_gradients_are_recorded(zoo, monkeypatch):
    apply_fast_path(zoo, FastPathConfig(cache_reference_kv=True))
    sites = len(zoo_readers(zoo))
    projections = count_projections(monkeypatch)
    zoo.requires_grad_(True)
    drive(zoo, steps=2)
    assert len(projections) == 2 * sites
    assert all(not p._kv for p in zoo_readers(zoo))


def test_released_reference_kv_cache_equals_the_plain_path(released):
    with torch.inference_mode():
        plain = drive(released)
        apply_fast_path(released, FastPathConfig(cache_reference_kv=True))
        blocks = released_blocks(released)
        assert blocks and all(b.cache_reference_kv for b in blocks)
        cached = drive(released)
    assert_all_close(cached, plain, SDPA_ATOL)
    apply_fast_path(released, FastPathConfig(cache_reference_kv=False))
    assert all(not b.cache_reference_kv and not b._kv for b in blocks)


def test_released_reference_kv_cache_projects_once_per_video(released, monkeypatch):
    apply_fast_path(released, FastPathConfig(cache_reference_kv=True))
    returned: list[tuple] = []  # kept alive, so distinct ids are distinct projections
    original = ReleasedTransformerBlock._reference_kv
    monkeypatch.setattr(ReleasedTransformerBlock, "_reference_kv",
                        lambda self, reference: returned.append(original(self, reference)) or returned[-1])
    with torch.inference_mode():
        drive(released, seed=0)
        drive(released, seed=1)  # another video: other reference rows
    sites = len(released_blocks(released))
    assert len(returned) == 2 * sites * STEPS and len({id(kv) for kv in returned}) == 2 * sites


def test_released_cache_still_matches_golden_case_d():
    case = GOLDEN.case("d_diffusion_net")
    net = tiny_diffusion_net(released_quirks=True)
    assert set_reference_kv_cache(net, True) > 0
    atol, rtol = GOLDEN.tolerance(case)
    with torch.inference_mode():
        for call, out in stream_case_d(tiny_reference_net(released_quirks=True), net, case, case.meta["sequence"]):
            name = f"clip{call['clip']}.step{call['step']}"
            torch.testing.assert_close(out, case[f"{name}.noise_pred_cfg_batch"], atol=atol, rtol=rtol)


# ---- channels-last convolutions ------------------------------------------------------------------


@pytest.mark.parametrize("family", NETS)
def test_channels_last_equals_the_plain_layout(family, request):
    net = request.getfixturevalue(family)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        plain = drive(net)
        apply_fast_path(net, FastPathConfig(cache_reference_kv=False, channels_last=True))
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
        fast = drive(net)
    assert_all_close(fast, plain, LAYOUT_ATOL)
    apply_fast_path(net, FastPathConfig(cache_reference_kv=False))
    assert all(c.weight.is_contiguous() for c in convs)


# ---- torch.compile with a clean fallback ---------------------------------------------------------


def test_compiled_zoo_net_equals_eager(zoo):
    with torch.inference_mode():
        plain = drive(zoo, steps=1)
        apply_fast_path(zoo, FastPathConfig(compile=True, compile_backend="eager"))
        assert isinstance(zoo.diffusion_net.forward, CompiledForward)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no fallback: it really ran compiled
            fast = drive(zoo, steps=1)
    assert zoo.diffusion_net.forward.failure is None
    assert_all_close(fast, plain, 0.0)
    apply_fast_path(zoo, FastPathConfig())
    assert "forward" not in zoo.diffusion_net.__dict__


@pytest.mark.parametrize("family", NETS)
def test_what_torch_compile_traces_equals_the_plain_path(family, request, monkeypatch):
    """Under torch.compile the networks take their graph-friendly paths: no reference K/V cache
    lookup, and (released) unconditional rows masked instead of split off (Q10). Run here eagerly,
    as dynamo sees them (tracing the released net takes a minute on CPU; it is one graph, no break)."""
    net = request.getfixturevalue(family)
    with torch.inference_mode():
        plain = drive(net)
        apply_fast_path(net, FastPathConfig(cache_reference_kv=True))
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        traced = drive(net)
    assert_all_close(traced, plain, SDPA_ATOL)
    assert all(not p._kv for p in zoo_readers(net))
    if family == "released":
        assert all(not b._kv for b in released_blocks(net))


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 4:
            raise ValueError(f"x must end in 4, got {tuple(x.shape)}")
        return self.layer(x).relu()


@register_backend(name="memo_zoo_test_failing")
def failing_backend(graph, example_inputs):
    """A torch.compile backend that always fails, as a broken toolchain would."""
    raise RuntimeError("no code generator here")


def test_a_failing_compiler_warns_once_and_runs_eager():
    module, x = Small(), torch.randn(2, 4)
    plain = module(x)
    assert compile_module(module, FastPathConfig(compile=True, compile_backend="memo_zoo_test_failing"), "Small")
    with pytest.warns(RuntimeWarning, match="torch.compile of Small failed .*running it eager") as caught:
        first = module(x)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = module(x)  # eager from now on, silently
    torch.testing.assert_close(first, plain, atol=0, rtol=0)
    torch.testing.assert_close(again, plain, atol=0, rtol=0)


def test_an_unavailable_compiler_warns_and_keeps_eager():
    module = Small()
    with pytest.warns(RuntimeWarning, match="not available"):
        assert not compile_module(module, FastPathConfig(compile=True, compile_backend="no-such-backend"), "Small")
    assert "forward" not in module.__dict__


def test_bad_inputs_raise_their_own_error_and_keep_the_compiler():
    module = Small()
    compile_module(module, FastPathConfig(compile=True, compile_backend="eager"), "Small")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match="must end in 4"):
            module(torch.randn(2, 5))
        torch.testing.assert_close(module(torch.ones(1, 4)), Small.forward(module, torch.ones(1, 4)))
    assert module.forward.failure is None
    eager_forward(module)
    assert "forward" not in module.__dict__


# ---- bf16 autocast -------------------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path):
    return portrait(tmp_path / "face.png"), write_wav(tmp_path / "speech.wav", speech_like(), 22_050)


def test_cpu_bf16_generation_is_finite_and_near_float32(inputs, tmp_path):
    velocities: dict[str, list[torch.Tensor]] = {}
    for dtype in ("float32", "bfloat16"):
        model = make_model()
        outs = velocities.setdefault(dtype, [])
        model.net.register_forward_hook(lambda module, args, out, outs=outs: outs.append(out.float().clone()))
        result = run(model, config(inputs, tmp_path, dtype=dtype, out=tmp_path / f"{dtype}.mp4"))
        assert result.frames > 0 and result.path.stat().st_size > 0
    scale = max(v.abs().max() for v in velocities["float32"])
    assert len(velocities["bfloat16"]) == len(velocities["float32"])
    for low, full in zip(velocities["bfloat16"], velocities["float32"]):
        assert low.isfinite().all()
        assert (low - full).abs().max() <= BF16_RTOL * scale


def test_cpu_bf16_released_net_is_finite_and_near_float32(released):
    with torch.inference_mode():
        full = drive(released)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = [out.float() for out in drive(released)]
    scale = max(v.abs().max() for v in full)
    for a, b in zip(low, full):
        assert a.isfinite().all()
        assert (a - b).abs().max() <= BF16_RTOL * scale


# ---- loading ------------------------------------------------------------------------------------


def test_loading_applies_the_fast_path_once():
    recipe = validate_document(make_recipe(), REGISTRY, "test")
    fast = FastPathConfig(channels_last=True, compile=True, compile_backend="eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerationWarning)
        model = load_generator_model(None, recipe, REGISTRY, fast_path=fast)
    assert model.fast_path == fast and model.net.__dict__[APPLIED] == fast
    wrapper = model.net.diffusion_net.forward
    assert isinstance(wrapper, CompiledForward)
    readers = [m.processor for m in model.net.modules() if isinstance(m, Attention)
               and isinstance(m.processor, MemoAttnProcessor) and m.processor.role == "read"]
    assert readers and all(p.cache_kv for p in readers)
    apply_fast_path(model, fast.model_copy())  # the same switches again (generate_video per video)
    assert model.net.diffusion_net.forward is wrapper  # not compiled a second time
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerationWarning)
        plain = load_generator_model(None, recipe, REGISTRY)
    assert plain.fast_path is None and "forward" not in plain.net.diffusion_net.__dict__


def test_bf16_is_the_cuda_default(monkeypatch):
    """generate_video autocasts to bf16 on CUDA unless told otherwise (fp32 on CPU)."""
    import memo_zoo.generate.pipeline as pipeline
    from memo_zoo.generate.config import GenerateConfig

    options = {"image": "face.png", "audio": "speech.wav"}
    assert pipeline.device_and_dtype(GenerateConfig(**options, device="cpu"))[1] == torch.float32
    monkeypatch.setattr(pipeline, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pipeline.device_and_dtype(GenerateConfig(**options))[1] == torch.bfloat16
    assert pipeline.device_and_dtype(GenerateConfig(**options, dtype="float32"))[1] == torch.float32
