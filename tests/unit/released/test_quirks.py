"""``released_quirks`` (issue 18 item 4): Q11 and Q12 on request, per-video conditioning by default.

Q11: the release's Reference Net tiles the B image-token rows over its N input rows (row n reads
video ``n % B``'s tokens). Q12: its Diffusion Net tiles the B reference-image token sets over the
B*F rows (row n reads video ``n % B``'s). With the switch off (the default) every row reads its
own video's tokens, which makes a batched call equal to one call per video; with it on, exactly
the rows whose video differs from ``n % B`` change. Inputs are case d's clip 0 (sizes from the
golden folder).
"""

from __future__ import annotations

import pytest
import torch

from memo_zoo.model.released.reference_unet import ReleasedReferenceNet
from memo_zoo.model.released.unet3d import ReleasedDiffusionNet
from tests.unit.released.helpers import (GOLDEN, diffusion_config, factories, reference_config, reference_features,
                                         release_layout, tiny_diffusion_net, tiny_reference_net)

pytestmark = pytest.mark.usefixtures("one_thread")

CASE = GOLDEN.case("d_diffusion_net")
CALL = CASE.meta["sequence"][0]
ATOL, RTOL = GOLDEN.tolerance(CASE)
DIFFERENT = 1e-3  # far above the tolerance, far below the size of what a quirk changes


def per_video(features: dict[str, torch.Tensor], batch: int, video: int) -> dict[str, torch.Tensor]:
    """Video ``video``'s rows of reference features made for ``batch`` videos of consecutive rows."""
    return {k: v.reshape(batch, -1, *v.shape[1:])[video] for k, v in features.items()}


def test_default_reference_net_conditions_each_video_on_its_own_tokens():
    net = tiny_reference_net(released_quirks=False)
    tokens = CASE["encoder_hidden_states"]
    batch = tokens.shape[0]
    with torch.no_grad():
        together = reference_features(net, CASE, 0)
        for video in range(batch):
            alone = net(CASE["clip0.ref_image_latents"], torch.zeros(()), tokens[video:video + 1])
            for name, value in per_video(together, batch, video).items():
                torch.testing.assert_close(value, alone[name], atol=ATOL, rtol=RTOL)


def test_q11_changes_exactly_the_rows_that_read_the_other_videos_tokens():
    tokens = CASE["encoder_hidden_states"]
    batch = tokens.shape[0]
    with torch.no_grad():
        quirk = reference_features(tiny_reference_net(released_quirks=True), CASE, 0)
        fixed = reference_features(tiny_reference_net(released_quirks=False), CASE, 0)
    rows = next(iter(quirk.values())).shape[0]
    per = rows // batch
    same = torch.tensor([n % batch == n // per for n in range(rows)])
    assert same.any() and (~same).any()
    changed_somewhere = False
    for name in quirk:
        torch.testing.assert_close(quirk[name][same], fixed[name][same], atol=ATOL, rtol=RTOL)
        gap = (quirk[name][~same] - fixed[name][~same]).flatten(1).abs().amax(1)
        # the first transformer's norm1 comes before any cross-attention: untouched everywhere
        changed_somewhere |= bool((gap > DIFFERENT).any())
        if (gap > DIFFERENT).any():
            assert (gap > DIFFERENT).all(), f"{name}: only some of the mis-tiled rows changed"
    assert changed_somewhere


@pytest.fixture(scope="module")
def clip0():
    """Case d's first call: the inputs, the (quirked, as released) reference features and the state's motion."""
    features = reference_features(tiny_reference_net(released_quirks=True), CASE, 0)
    name = f"clip{CALL['clip']}.step{CALL['step']}"
    return {"features": features, "latents": CASE[f"{name}.latents"], "t": CASE[f"{name}.timestep"],
            "tokens": CASE["encoder_hidden_states"], "audio": CASE["clip0.audio_embedding_cfg"],
            "emotion": CASE["clip0.audio_emotion_cfg"], "uncond": CASE["uc_mask"]}


def run(net, inputs, videos: slice | None = None) -> torch.Tensor:
    """One clip-0 call (fresh state + update) on all videos, or on ``videos`` only."""
    batch = inputs["tokens"].shape[0]
    frames = inputs["latents"].shape[2]
    latents = release_layout(torch.cat([inputs["latents"]] * batch))
    features, tokens, audio, emotion = inputs["features"], inputs["tokens"], inputs["audio"], inputs["emotion"]
    uncond = inputs["uncond"].reshape(batch, frames)[:, 0]
    if videos is not None:
        features = {k: v.reshape(batch, -1, *v.shape[1:])[videos].flatten(0, 1) for k, v in features.items()}
        latents, tokens, audio, emotion, uncond = (x[videos] for x in (latents, tokens, audio, emotion, uncond))
    b = tokens.shape[0]
    with torch.no_grad():
        state = net.update_state(net.new_state(b), net.motion_features(features, b, tuple(latents.shape[-2:])))
        return net(latents, inputs["t"], tokens, audio, emotion, features, state, uncond)


def test_default_diffusion_net_equals_one_call_per_video(clip0):
    net = tiny_diffusion_net(released_quirks=False)
    together = run(net, clip0)
    for video in range(together.shape[0]):
        torch.testing.assert_close(together[video:video + 1], run(net, clip0, slice(video, video + 1)),
                                   atol=ATOL, rtol=RTOL)


def test_q12_changes_only_the_conditional_videos(clip0):
    """Unconditional rows never read the reference tokens (Q10), so only the conditional video
    differs, and it does (its even frames read the other copy; the motion modules spread it)."""
    net = tiny_diffusion_net(released_quirks=False)
    fixed = run(net, clip0)
    net.released_quirks = True
    quirk = run(net, clip0)
    batch, frames = fixed.shape[:2]
    uncond = clip0["uncond"].reshape(batch, frames)[:, 0]
    assert uncond.any() and (~uncond).any()
    torch.testing.assert_close(quirk[uncond], fixed[uncond], atol=ATOL, rtol=RTOL)
    assert (quirk[~uncond] - fixed[~uncond]).abs().max() > DIFFERENT


def test_switch_defaults_to_the_corrected_behaviour():
    with torch.device("meta"):
        assert ReleasedReferenceNet(reference_config()).released_quirks is False
        assert ReleasedDiffusionNet(diffusion_config(), *factories(diffusion_config())).released_quirks is False
