"""The trainer's latent cache and fused AdamW (issue 19, item 5): faster, and what is learned is the same.

A step's inputs and loss with the cache equal those without it; with colour augmentation or a
VAE whose encoding is random the cache is not used; the fused AdamW update equals the for-loop
one; neither option changes an experiment's training key. The on-disk store encodes a clip once
for every run with the same VAE and never serves one VAE's latents to another.
"""

from __future__ import annotations

import pytest
import torch

from memo_zoo.tasks.shared_stage1 import train_key_document
from memo_zoo.train.colour_augment import ColourAugmentConfig
from memo_zoo.train.config import ConditionDropoutConfig, TimestepConfig, TrainConfig
from memo_zoo.train.latent_cache import ClipLatentStore, LatentCache, deterministic_encoder, vae_fingerprint
from memo_zoo.train.loop import fused_supported
from memo_zoo.train.step import prepare_inputs, robust_objective
from memo_zoo_plugins.vae.autoencoder_training import build_autoencoder
from memo_zoo_plugins.vae.configs import SDVAEConfig, TrainVAEConfig
from memo_zoo_plugins.vae.sd_vae import SDVAE
from tests.unit.test_train_step import P, SIZE, VAE, WINDOW, make_modules, one_thread  # noqa: F401 (autouse)

NO_DROPOUT = ConditionDropoutConfig(emotion=0, reference=0, audio=0, motion=0)


@pytest.fixture(scope="module")
def sd_vae(tmp_path_factory):
    """A small random AutoencoderKL (4x downsampling) loaded through the sd_vae component."""
    folder = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    build_autoencoder(TrainVAEConfig(block_out_channels=[8, 8, 8], latent_channels=4, norm_num_groups=4),
                      SIZE).save_pretrained(folder)
    return SDVAE(SDVAEConfig(weights=str(folder)))


def clip_frames(clips: int = 3, length: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(clips, length, 3, SIZE, SIZE, generator=g) * 2 - 1


def keyed_batch(frames: torch.Tensor, seed: int, batch: int = 3, f: int = 3, m: int = 4) -> dict:
    """A collated batch whose images are frames of ``frames`` (clips, T, 3, S, S), with their keys;
    sample 0 uses 2 motion frames (front padding repeats its first real one), the others all m."""
    g = torch.Generator().manual_seed(seed)
    clips, length = frames.shape[:2]
    rows = {"reference": [], "target": [], "motion": [], "reference_key": [], "target_keys": [], "motion_keys": []}
    masks = []
    for b in range(batch):
        clip = int(torch.randint(clips, (1,), generator=g))
        start = int(torch.randint(m, length - f + 1, (1,), generator=g))
        real = 2 if b == 0 else m
        motion = [start - real] * (m - real) + list(range(start - real, start))
        ref = int(torch.randint(length, (1,), generator=g))
        rows["reference"].append(frames[clip, ref])
        rows["target"].append(frames[clip, start:start + f])
        rows["motion"].append(frames[clip, motion])
        rows["reference_key"].append(torch.tensor([clip, ref]))
        rows["target_keys"].append(torch.tensor([[clip, start + i] for i in range(f)]))
        rows["motion_keys"].append(torch.tensor([[clip, i] for i in motion]))
        masks.append(torch.arange(m) >= m - real)
    out = {name: torch.stack(values) for name, values in rows.items()}
    out["motion_mask"] = torch.stack(masks)
    out["audio"] = 0.3 * (torch.rand(batch, f, 2 * WINDOW + 1, P, generator=g) * 2 - 1)
    out["emotion"] = torch.arange(batch) % 8
    return out


def prepare(batch: dict, vae, cache: LatentCache | None, seed: int = 0, colour=None, single_frame=False) -> dict:
    return prepare_inputs(batch, vae, torch.Generator().manual_seed(seed), single_frame=single_frame,
                          use_audio=not single_frame, timesteps=TimestepConfig(), dropout=NO_DROPOUT,
                          motion_padding="drop", audio_window=WINDOW, no_emotion=8, device=torch.device("cpu"),
                          vae_batch=5, colour_augment=colour, latent_cache=cache)


def test_the_cache_encodes_each_frame_once_and_keeps_to_its_budget():
    calls = []

    def encode(frames):
        calls.append(frames.shape[0])
        return frames[:, :2, ::4, ::4] * 2

    frames = clip_frames(1, 6)[0]
    keys = torch.tensor([[0, i] for i in range(6)])
    cache = LatentCache(max_bytes=10**9)
    first = cache.encode(frames[:4], keys[:4], encode)
    second = cache.encode(frames[2:], keys[2:], encode)
    assert calls == [4, 2] and cache.hits == 2 and cache.misses == 6 and len(cache) == 6
    assert torch.equal(second[:2], first[2:]) and torch.equal(second, encode(frames[2:]))
    second.mul_(0)  # a caller's in-place change (motion augmentation) must not reach the cache
    assert torch.equal(cache.encode(frames[2:], keys[2:], encode), encode(frames[2:]))
    one = first[0].numel() * first[0].element_size()
    small = LatentCache(max_bytes=3 * one)
    small.encode(frames, keys, encode)
    assert len(small) == 3 and small.bytes == 3 * one
    assert torch.equal(small.encode(frames, keys, encode), encode(frames))  # over budget: encoded, right
    with pytest.raises(ValueError, match=r"keys must be \(N, 2\)"):
        cache.encode(frames[:2], keys[:3], encode)
    stats = small.stats()
    assert stats["latent_cache_frames"] == 3 and 0 < stats["latent_cache_hit_rate"] < 1


@pytest.mark.parametrize("single_frame", [False, True])
def test_a_step_with_the_cache_has_the_inputs_and_the_loss_of_one_without(sd_vae, single_frame):
    frames = clip_frames()
    cache = LatentCache(max_bytes=10**9)
    modules = make_modules()
    modules.eval()
    # The pixel VAE makes the net's latent layout; the sd_vae checks the cache with a real encoder.
    for vae in (sd_vae, VAE):
        for seed in range(3):  # later batches hit frames the earlier ones cached
            batch = keyed_batch(frames, seed)
            plain, cached = prepare(batch, vae, None, seed, single_frame=single_frame), \
                prepare(batch, vae, cache, seed, single_frame=single_frame)
            for name in ("z0", "noise", "t", "reference_latents", "motion_latents"):
                if plain[name] is None:
                    assert cached[name] is None
                    continue
                torch.testing.assert_close(cached[name], plain[name], rtol=1e-5, atol=1e-5)
            if vae is VAE:
                torch.testing.assert_close(robust_objective(modules(cached), None)[0],
                                           robust_objective(modules(plain), None)[0], rtol=1e-5, atol=1e-6)
        assert cache.hits > 0
        cache = LatentCache(max_bytes=10**9)  # another VAE, another cache (one per run)


def test_recoloured_frames_and_sampled_posteriors_are_never_cached(sd_vae, tmp_path):
    frames = clip_frames()
    cache = LatentCache(max_bytes=10**9)
    colour = ColourAugmentConfig(shift=0.2, gain=0.2)
    batch = keyed_batch(frames, 0)
    recoloured = prepare(batch, VAE, cache, colour=colour)
    assert len(cache) == 0
    torch.testing.assert_close(recoloured["z0"], prepare(batch, VAE, None, colour=colour)["z0"])
    assert deterministic_encoder(VAE) and deterministic_encoder(sd_vae)
    sampled = SDVAE(SDVAEConfig(weights=sd_vae.config.weights, sample=True))
    assert not deterministic_encoder(sampled) and not deterministic_encoder(object())


def test_fused_adamw_makes_the_update_of_the_for_loop_adamw():
    torch.manual_seed(0)
    modules = make_modules()
    batch = keyed_batch(clip_frames(), 0)
    params = {}
    for fused in (None, True):
        copy = make_modules()
        copy.load_state_dict(modules.state_dict())
        trainable = [p for p in copy.parameters() if p.requires_grad]
        assert fused_supported(bool(fused), trainable) is fused
        optimizer = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.01, fused=fused)
        for step in range(3):
            optimizer.zero_grad()
            robust_objective(copy(prepare(batch, VAE, None, seed=step)), None)[0].backward()
            optimizer.step()
        params[fused] = torch.cat([p.detach().flatten() for p in trainable])
    # Where a gradient is near zero, Adam's m / (sqrt(v) + eps) is a ratio of two tiny numbers and
    # float rounding moves it by a fraction of the lr: every parameter within 2% of one lr step.
    torch.testing.assert_close(params[True], params[None], rtol=0, atol=0.02 * 1e-2)
    assert (params[True] - params[None]).abs().gt(1e-6).float().mean() < 1e-3


def test_speed_options_do_not_change_what_an_experiment_trains():
    base = TrainConfig()
    fast = TrainConfig(latent_cache_mb=0, fused_adamw=False, latent_store=False)
    assert train_key_document(fast) == train_key_document(base)


class Clips:
    """A ``ClipSource`` over in-memory clips (clips, T, 3, S, S), each with its own folder."""

    def __init__(self, frames: torch.Tensor, root) -> None:
        self.frames, self.root, self.opened = frames, root, []

    def clip_directory(self, clip: int):
        folder = self.root / f"clip{clip}"
        folder.mkdir(exist_ok=True)
        return folder

    def clip_length(self, clip: int) -> int:
        return self.frames.shape[1]

    def clip_images(self, clip: int) -> torch.Tensor:
        self.opened.append(clip)
        return self.frames[clip]


def test_the_store_encodes_each_clip_once_for_every_run_and_a_step_is_unchanged(sd_vae, tmp_path):
    frames = clip_frames()
    clips = Clips(frames, tmp_path)
    fingerprint = vae_fingerprint(sd_vae)
    modules = make_modules()
    modules.eval()
    for run in range(2):  # the second run (another stage, another variant) reads what the first wrote
        opened = len(clips.opened)
        store = ClipLatentStore(clips, fingerprint, lambda images: sd_vae.encode(images))
        cache = LatentCache(max_bytes=10**9, store=store)
        for seed in range(3):
            batch = keyed_batch(frames, seed)
            plain, stored = prepare(batch, sd_vae, None, seed), prepare(batch, sd_vae, cache, seed)
            for name in ("z0", "noise", "t", "reference_latents", "motion_latents"):
                # A whole clip is encoded in other batches than the step's: float rounding only.
                torch.testing.assert_close(stored[name], plain[name], rtol=1e-5, atol=1e-5)
        used = sorted({int(c) for c in batch["target_keys"][..., 0].flatten()})
        if run == 0:
            assert store.encoded_clips == len(set(clips.opened)) == len(clips.opened) and store.read_clips == 0
        else:
            assert store.encoded_clips == 0 and store.read_clips > 0 and len(clips.opened) == opened
        assert all(store.path(c).is_file() for c in used)
        assert cache.stats()["latent_store_clips_encoded"] == store.encoded_clips
    opened = len(clips.opened)
    # A file that is not a whole clip's latents (a foreign or damaged one) is encoded again.
    store.path(0).write_bytes(b"not an array")
    fresh = ClipLatentStore(clips, fingerprint, lambda images: sd_vae.encode(images))
    torch.testing.assert_close(fresh.latents(0), sd_vae.encode(frames[0]), rtol=1e-5, atol=1e-5)
    assert fresh.encoded_clips == 1 and len(clips.opened) == opened + 1


def test_the_store_keeps_to_the_budget_and_names_a_frame_it_does_not_have(tmp_path):
    frames = clip_frames(2, 5)
    store = ClipLatentStore(Clips(frames, tmp_path), "fp", lambda images: images[:, :2] * 3)
    one_clip = 5 * 2 * SIZE * SIZE * 4
    cache = LatentCache(max_bytes=one_clip, store=store)
    keys = torch.tensor([[0, 1], [1, 4], [0, 3], [1, 0]])
    out = cache.encode(frames[0, :4], keys, lambda _: pytest.fail("the store encodes whole clips"))
    assert torch.equal(out, torch.stack([frames[c, f, :2] * 3 for c, f in keys.tolist()]))
    assert cache.bytes == one_clip and cache.misses == 3 and cache.hits == 1  # clip 1 did not fit: read again
    with pytest.raises(IndexError, match=r"frame 7 of clip 0 .*latents-fp\.npy"):
        cache.encode(frames[0, :1], torch.tensor([[0, 7]]), lambda _: None)


def test_the_fingerprint_follows_the_weights_and_the_encoding_settings(sd_vae):
    same = SDVAE(SDVAEConfig(weights=sd_vae.config.weights))
    assert vae_fingerprint(same) == vae_fingerprint(sd_vae)
    rescaled = SDVAE(SDVAEConfig(weights=sd_vae.config.weights, scaling_factor=0.5))
    assert vae_fingerprint(rescaled) != vae_fingerprint(sd_vae)
    with torch.no_grad():
        next(same.parameters()).view(-1)[0] += 1e-3  # an autoencoder retrained in place
    assert vae_fingerprint(same) != vae_fingerprint(sd_vae)
    from memo_zoo_plugins.vae.configs import PixelVAEConfig
    from memo_zoo_plugins.vae.pixel import PixelVAE
    assert vae_fingerprint(PixelVAE(PixelVAEConfig(patch_size=8))) != vae_fingerprint(PixelVAE(PixelVAEConfig(patch_size=4)))
