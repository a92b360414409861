"""The ``joint_audio`` audio-fusion kind (the released MEMO audio module; spec E1, E3, A6, §10) and
the slot's optional build args (``memo_zoo.slots.slot.call_factory``).

Parity with the released code is tests/unit/released/test_audio_module_parity.py (golden case c).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from pydantic import ValidationError

from memo_zoo.plugin import ComponentSpec
from memo_zoo.plugin.manager import ComponentFactory
from memo_zoo.slots import SLOT_BY_NAME
from memo_zoo.slots.audio_fusion import AudioFusionModule
from memo_zoo.slots.slot import accepted_arguments, call_factory
from memo_zoo.testing import check_audio_fusion, check_documented
from memo_zoo_plugins.audio_fusion import cross_attention, identity, multimodal_attention
from memo_zoo_plugins.audio_fusion.joint_audio import JointAudioConfig, ReleasedEmoAdaLayerNorm, build

pytestmark = pytest.mark.usefixtures("one_thread")

SLOT = SLOT_BY_NAME["audio_fusion"]
SPEC = ComponentSpec("joint_audio", JointAudioConfig, build,
                     "released MEMO audio module: self-, joint attention and GEGLU on both streams (E1, E3, §10)")
AUDIO_OUTPUT_LAYERS = ("audio_ff.", "audio_norm3.", "attn2.to_add_out.")


def inputs(seed: int = 0, rows: int = 6, length: int = 8, tokens: int = 5, channels: int = 32, audio_dim: int = 12):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(rows, length, channels, generator=g)
    audio = torch.randn(rows, tokens, audio_dim, generator=g)
    emotion = torch.randint(0, 9, (rows,), generator=g)
    return video, audio, emotion


def perturbed(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Every parameter moved off its init (zero output layers and modulations included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return module


# ---- A6: a new module leaves the streams as they are ---------------------------------------------

@pytest.mark.parametrize("final", [False, True])
@pytest.mark.parametrize("inner", [None, 16])
def test_a6_a_new_module_returns_video_and_audio_exactly(final, inner):
    torch.manual_seed(0)
    module = build(JointAudioConfig(norm_groups=8, heads=4), channels=32, audio_dim=12, inner_channels=inner,
                   final=final)
    video, audio, emotion = inputs()
    for label in (emotion, None):
        v, a = module(video, audio, label)
        assert torch.equal(v, video) and torch.equal(a, audio)


def test_a6_the_double_residual_of_the_release_hands_on_twice_the_audio():
    """README Q7: ``block(audio) + audio``; a new block is the identity on audio, so 2 * audio."""
    module = build(JointAudioConfig(norm_groups=8, heads=4, double_audio_residual=True), channels=32, audio_dim=12)
    video, audio, emotion = inputs()
    v, a = module(video, audio, emotion)
    assert torch.equal(v, video) and torch.equal(a, audio + audio)


# ---- the final site --------------------------------------------------------------------------------

def test_the_final_site_has_no_audio_output_layers_and_hands_the_audio_on():
    config = JointAudioConfig(norm_groups=8, heads=4, double_audio_residual=True)
    keys = lambda m: [k.removeprefix("transformer_blocks.0.") for k in m.state_dict()]  # noqa: E731
    inner_site = build(config, channels=32, audio_dim=12)
    final_site = perturbed(build(config, channels=32, audio_dim=12, final=True))
    assert {k for k in keys(inner_site) if k.startswith(AUDIO_OUTPUT_LAYERS)} == {
        "audio_ff.net.0.proj.weight", "audio_ff.net.0.proj.bias", "audio_ff.net.2.weight", "audio_ff.net.2.bias",
        "audio_norm3.weight", "audio_norm3.bias", "attn2.to_add_out.weight", "attn2.to_add_out.bias"}
    assert not [k for k in keys(final_site) if k.startswith(AUDIO_OUTPUT_LAYERS)]
    video, audio, emotion = inputs()
    v, a = final_site(video, audio, emotion)
    assert a is audio and not torch.equal(v, video)
    # The audio stream still shapes the video through the joint attention at the final site.
    v_other, _ = final_site(video, audio + 1.0, emotion)
    assert not torch.allclose(v, v_other)


# ---- emotion ---------------------------------------------------------------------------------------

def test_emotion_none_is_the_null_row():
    module = perturbed(build(JointAudioConfig(norm_groups=8, heads=4), channels=32, audio_dim=12))
    video, audio, _ = inputs()
    null = torch.full((video.shape[0],), JointAudioConfig().num_emotion_classes)
    for x, y in zip(module(video, audio, None), module(video, audio, null)):
        assert torch.equal(x, y)
    # Labels matter once trained, so the equality above is not vacuous.
    assert not torch.allclose(module(video, audio, None)[0], module(video, audio, torch.zeros_like(null))[0])


def test_the_emotion_tables_have_a_null_row_only_when_asked():
    with_null = build(JointAudioConfig(norm_groups=8, heads=4), channels=32, audio_dim=12)
    without = build(JointAudioConfig(norm_groups=8, heads=4, null_emotion_row=False), channels=32, audio_dim=12)
    table = "transformer_blocks.0.norm1.class_embedder.embedding_table.weight"
    assert with_null.state_dict()[table].shape[0] == 10 and without.state_dict()[table].shape[0] == 9
    video, audio, emotion = inputs()
    without(video, audio, emotion)
    with pytest.raises(ValueError, match="null_emotion_row=False"):
        without(video, audio, None)


@pytest.mark.parametrize("dim, rows, length, seed", [(8, 3, 5, 0), (12, 4, 1, 1), (20, 2, 7, 2)])
def test_e3_released_emo_adaln_equals_a_slow_reference(dim, rows, length, seed):
    """README Q8: ``LN(x) (1 + scale) + shift`` with ``shift, scale = Linear(SiLU(table[e]))``, shift first."""
    torch.manual_seed(seed)
    norm = perturbed(ReleasedEmoAdaLayerNorm(dim, num_classes=9, null_row=True, eps=1e-5).double(), seed)
    x = torch.randn(rows, length, dim, dtype=torch.float64)
    labels = torch.randint(0, 10, (rows,))
    table = norm.class_embedder.embedding_table.weight
    linear = norm.adaLN_modulation[1]
    expected = torch.empty_like(x)
    for n in range(rows):
        e = table[labels[n]]
        modulation = linear.weight @ (e * torch.sigmoid(e)) + linear.bias
        shift, scale = modulation[:dim], modulation[dim:]
        for i in range(length):
            row = x[n, i]
            mean = row.sum() / dim
            var = ((row - mean) ** 2).sum() / dim
            expected[n, i] = (row - mean) / torch.sqrt(var + 1e-5) * (1 + scale) + shift
    torch.testing.assert_close(norm(x, labels), expected, atol=1e-12, rtol=1e-10)


def test_a_new_emo_adaln_is_a_plain_layer_norm_for_every_label():
    """E3: the modulation starts at zero."""
    norm = ReleasedEmoAdaLayerNorm(8, num_classes=9, null_row=True, eps=1e-5)
    x = torch.randn(10, 3, 8)
    torch.testing.assert_close(norm(x, torch.arange(10)), torch.nn.functional.layer_norm(x, (8,), eps=1e-5))


# ---- build args and bad input ----------------------------------------------------------------------

def test_heads_and_norm_groups_from_the_host_take_precedence_over_the_config():
    config = JointAudioConfig(heads=8, norm_groups=32)
    module = build(config, channels=32, audio_dim=12, inner_channels=16, heads=2, norm_groups=4)
    assert (module.inner, module.heads, module.norm_groups) == (16, 2, 4)
    assert module.norm.num_groups == 4 and module.proj_in.weight.shape == (16, 32, 1, 1)
    assert module.proj_out.weight.shape == (32, 16, 1, 1)
    defaults = build(config, channels=32, audio_dim=12)
    assert (defaults.inner, defaults.heads, defaults.norm_groups) == (32, 8, 32)


def test_heads_change_the_function_not_the_keys():
    """The released UNet's per-level heads must reach the module: a state dict does not carry them."""
    config = JointAudioConfig(norm_groups=8)
    two = perturbed(build(config, channels=32, audio_dim=12, heads=2))
    four = build(config, channels=32, audio_dim=12, heads=4)
    four.load_state_dict(two.state_dict())
    video, audio, emotion = inputs()
    assert not torch.allclose(two(video, audio, emotion)[0], four(video, audio, emotion)[0])


@pytest.mark.parametrize("kwargs, message", [
    ({"inner_channels": 30, "heads": 4}, "inner width .30. must be divisible by heads .4."),
    ({"norm_groups": 5}, "channels .32. must be divisible by norm_groups .5."),
])
def test_impossible_sizes_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(JointAudioConfig(), channels=32, audio_dim=12, **kwargs)


def test_bad_inputs_are_refused_by_name():
    module = build(JointAudioConfig(norm_groups=8, heads=4), channels=32, audio_dim=12)
    video, audio, emotion = inputs()
    with pytest.raises(ValueError, match=r"emotion must hold one label per row, shape \(6,\); got \(2,\)"):
        module(video, audio, emotion[:2])
    with pytest.raises(ValueError, match=r"video must be \(N, L, 32\)"):
        module(video[..., :16], audio, emotion)
    with pytest.raises(ValueError, match=r"audio must be \(6, T, 12\)"):
        module(video, audio[:3], emotion)


def test_config_refuses_unknown_and_bad_options():
    with pytest.raises(ValidationError, match="extra"):
        JointAudioConfig(head=8)
    with pytest.raises(ValidationError, match="heads"):
        JointAudioConfig(heads=0)


# ---- the slot contract -----------------------------------------------------------------------------

def test_the_slot_contract_kit_passes_on_the_spec():
    """What tests/plugins/test_contracts.py will run once the kind is registered, default options."""
    check_documented(SPEC)
    check_audio_fusion(SPEC)


def test_a_built_module_follows_the_protocol():
    assert isinstance(build(JointAudioConfig(), channels=32, audio_dim=16), AudioFusionModule)


def test_build_accepts_every_optional_build_arg_of_the_slot():
    assert accepted_arguments(build, SLOT.optional_build_args) == set(SLOT.optional_build_args)
    assert SLOT.factory_signature == "factory(config, channels, audio_dim[, inner_channels, final, heads, norm_groups])"


# ---- call_factory ----------------------------------------------------------------------------------

OPTIONAL = {"inner_channels": 16, "final": True, "heads": 2, "norm_groups": 4}


def test_call_factory_passes_the_optional_args_a_factory_names():
    seen = {}

    def factory(config, channels, audio_dim, *, final=False):
        seen.update(channels=channels, audio_dim=audio_dim, final=final)
        return "built"

    assert call_factory(factory, {"config": None, "channels": 8, "audio_dim": 4}, OPTIONAL) == "built"
    assert seen == {"channels": 8, "audio_dim": 4, "final": True}


def test_call_factory_passes_none_to_a_factory_that_names_none():
    def factory(config, channels, audio_dim):
        return (channels, audio_dim)

    assert call_factory(factory, {"config": None, "channels": 8, "audio_dim": 4}, OPTIONAL) == (8, 4)


def test_call_factory_passes_every_optional_arg_to_kwargs():
    def factory(config, channels, audio_dim, **extra):
        return extra

    assert call_factory(factory, {"config": None, "channels": 8, "audio_dim": 4}, OPTIONAL) == OPTIONAL


def test_call_factory_does_not_pass_by_keyword_what_is_positional_only():
    def factory(final=False, /, **sizes):
        return final, sizes

    required = {"config": None, "channels": 8, "audio_dim": 4}
    assert accepted_arguments(factory, ("final",)) == {"final"}  # **sizes takes it ...
    assert call_factory(factory, required, {"final": True}) == (False, {**required, "final": True})  # ... not ``final``

    def strict(final=False, /, *, config, channels, audio_dim):
        return final

    assert accepted_arguments(strict, ("final",)) == set()
    assert call_factory(strict, required, {"final": True}) is False


def test_call_factory_reads_the_component_function_behind_a_component_factory():
    """``ComponentFactory.__call__`` takes ``**build_args``; its ``build`` decides."""
    joint = ComponentFactory("audio_fusion", JointAudioConfig(), build)
    module = call_factory(joint, {"channels": 32, "audio_dim": 12}, OPTIONAL)
    assert (module.inner, module.final, module.heads, module.norm_groups) == (16, True, 2, 4)
    plain = ComponentFactory("audio_fusion", identity.NoFusionConfig(), identity.build)
    assert isinstance(call_factory(plain, {"channels": 32, "audio_dim": 12}, OPTIONAL), identity.IdentityFusion)


def test_call_factory_reads_through_a_lazy_reference():
    lazy = pytest.importorskip("memo_zoo.plugin.lazy").lazy
    package = "memo_zoo_plugins.audio_fusion"
    joint = ComponentFactory("audio_fusion", JointAudioConfig(), lazy(f"{package}.joint_audio:build"))
    assert call_factory(joint, {"channels": 32, "audio_dim": 12}, OPTIONAL).inner == 16
    plain = ComponentFactory("audio_fusion", identity.NoFusionConfig(), lazy(f"{package}.identity:build"))
    assert isinstance(call_factory(plain, {"channels": 32, "audio_dim": 12}, OPTIONAL), identity.IdentityFusion)


@pytest.mark.parametrize("module, config", [
    (identity, identity.NoFusionConfig()),
    (cross_attention, cross_attention.CrossAttentionFusionConfig()),
    (multimodal_attention, multimodal_attention.MultimodalAttentionConfig()),
])
def test_the_zoo_s_own_fusion_kinds_build_unchanged_through_call_factory(module, config):
    factory = ComponentFactory("audio_fusion", config, module.build)
    built = call_factory(factory, {"channels": 32, "audio_dim": 12}, OPTIONAL)
    video, audio, emotion = inputs()
    v, a = built(video, audio, emotion)
    assert v.shape == video.shape and a.shape == audio.shape


def test_call_factory_refuses_an_arg_given_twice_and_an_unreadable_factory():
    with pytest.raises(ValueError, match="final"):
        call_factory(lambda **kw: kw, {"final": True}, {"final": False})

    class Opaque:
        @property
        def __signature__(self):
            raise ValueError("no signature here")

        def __call__(self, **kw):
            return kw

    with pytest.raises(TypeError, match="cannot read the signature of factory"):
        call_factory(Opaque(), {}, {"final": True})
    assert inspect.signature(build).parameters["final"].default is False
