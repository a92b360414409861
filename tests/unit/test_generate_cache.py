"""Step caching (issue 19; ``StepCache`` in ``memo_zoo/generate/sampling.py``, ``StepCacheConfig``):
TeaCache's rule on a hand-made sequence of inputs, threshold 0 = today's video bit for bit, a huge
threshold = one network evaluation per clip; and the evaluation counts of ``GenerationResult``
(spec I2: a guided forward counts one per level; I3: the sampler's evaluations per step)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from memo_zoo.generate.config import GenerateConfig, StepCacheConfig
from memo_zoo.generate.sampling import ClipSampler, StepCache, relative_change
from memo_zoo.tasks.experiment_config import GenerationOptions
from tests.unit.test_generate import CLIP, FRAMES, config, inputs, make_model, run, spy_forward  # noqa: F401
from tests.unit.test_generate_guidance import record_frames

pytestmark = pytest.mark.usefixtures("one_thread")

CLIPS = math.ceil(FRAMES / CLIP)


class Network:
    """A stand-in velocity: v = 2 z + 1, counting its evaluations."""

    def __init__(self):
        self.calls = 0

    def __call__(self, sample: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return 2 * sample + 1


def sequence(factor: float, length: int) -> list[torch.Tensor]:
    """Inputs whose consecutive relative L1 change is exactly ``factor - 1``."""
    return [torch.full((1, 2, 3), factor ** i, dtype=torch.float64) for i in range(length)]


# ---- the rule ----------------------------------------------------------------------------------


def test_relative_change_is_teacaches_mean_l1_ratio():
    previous = torch.tensor([1.0, -2.0, 3.0, -4.0])
    assert relative_change(previous + torch.tensor([0.5, 0.5, -0.5, 0.0]), previous) == pytest.approx(1.5 / 10)
    assert relative_change(torch.ones(3), torch.zeros(3)) == math.inf  # nothing to compare: compute


@pytest.mark.parametrize("kind", ["output", "residual"])
def test_change_accumulates_since_the_last_evaluation(kind):
    """Each step changes the input by 4 %: with threshold 0.1 the sum reaches 0.12 on the third
    step after an evaluation, which evaluates again and restarts the sum."""
    cache, net = StepCache(StepCacheConfig(kind=kind, threshold=0.1)), Network()
    computed, last = [], None
    for sample in sequence(1.04, 8):
        before = net.calls
        velocity = cache.velocity(sample, "guided", lambda sample=sample: net(sample))
        computed.append(net.calls > before)
        last = sample if computed[-1] else last  # the input of the last evaluation
        if kind == "output":  # the velocity of the last evaluation, as it was
            expected = 2 * last + 1
        else:  # residual: the current input plus the last evaluation's velocity - input
            expected = sample + (2 * last + 1 - last)
        torch.testing.assert_close(velocity, expected)
    assert computed == [True, False, False, True, False, False, True, False]
    assert cache.accumulated == pytest.approx(0.04) and cache.reused == 5


def test_threshold_zero_never_reuses_and_a_new_branch_or_clip_always_computes():
    never, net = StepCache(StepCacheConfig(kind="output", threshold=0.0)), Network()
    for sample in [torch.ones(4)] * 5:  # not even an unchanged input is reused
        never.velocity(sample, "guided", lambda sample=sample: net(sample))
    assert net.calls == 5 and never.reused == 0

    cache, net = StepCache(StepCacheConfig(kind="output", threshold=1e9)), Network()
    samples = sequence(1.5, 6)
    for sample, branch in zip(samples[:4], ["guided", "guided", "conditional", "conditional"]):
        cache.velocity(sample, branch, lambda sample=sample: net(sample))
    assert net.calls == 2  # the first call and the first on the other branch (the interval's edge)
    cache.reset()  # a new clip: new noise
    cache.velocity(samples[4], "conditional", lambda: net(samples[4]))
    assert net.calls == 3


def test_kind_none_always_evaluates_and_is_left_out_of_the_dump():
    cache, net = StepCache(StepCacheConfig(kind="none", threshold=1e9)), Network()
    for sample in [torch.ones(2)] * 3:
        cache.velocity(sample, "guided", lambda sample=sample: net(sample))
    assert net.calls == 3
    # Off, the option is not in the dumped options: the experiment's video keys stay as they were.
    assert "cache" not in GenerationOptions().model_dump(mode="json")
    assert "cache" not in GenerateConfig(image="a.png", audio="a.wav").model_dump(mode="json")
    on = GenerationOptions(cache={"kind": "residual", "threshold": 0.2}).model_dump(mode="json")
    assert on["cache"] == {"kind": "residual", "threshold": 0.2}
    with pytest.raises(ValidationError, match="threshold"):
        StepCacheConfig(kind="output", threshold=-0.1)
    with pytest.raises(ValidationError, match="kind"):
        StepCacheConfig(kind="teacache")


# ---- in generation -----------------------------------------------------------------------------


def test_threshold_zero_is_todays_video_bit_for_bit(inputs, tmp_path, monkeypatch):
    frames = record_frames(monkeypatch)
    results, outputs = [], []
    for name, cache in (("today", {"kind": "none"}), ("zero", {"kind": "residual", "threshold": 0.0})):
        model = make_model(steps=3)
        forwards = spy_forward(monkeypatch, model.net)
        results.append(run(model, config(inputs, tmp_path, out=tmp_path / f"{name}.mp4", cache=cache)))
        outputs.append([call["out"] for call in forwards])
    assert len(outputs[0]) == len(outputs[1]) == 3 * CLIPS
    assert all(torch.equal(a, b) for a, b in zip(*outputs))
    np.testing.assert_array_equal(np.stack(frames[:FRAMES]), np.stack(frames[FRAMES:]))
    assert results[0].network_evaluations == results[1].network_evaluations == 3 * 2 * CLIPS


def test_a_huge_threshold_evaluates_once_per_clip(inputs, tmp_path, monkeypatch):
    model = make_model(steps=4)
    forwards = spy_forward(monkeypatch, model.net)
    result = run(model, config(inputs, tmp_path, cache={"kind": "output", "threshold": 1e9}))
    assert len(forwards) == CLIPS and all(float(call["timestep"][0]) == 1.0 for call in forwards)
    assert result.network_evaluations == 2 * CLIPS  # one batched forward of the two CFG levels
    assert result.evaluations_per_frame == 2.0
    # One velocity for every step of a clip: Euler then lands on z_1 - v (t = 1 -> 0), as one step would.
    assert result.frames == FRAMES


# ---- counting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheduler, cfg, per_frame", [
    ({"kind": "flow_euler", "steps": 2}, {"scale": 3.5}, 2 * 2),  # steps x levels
    ({"kind": "flow_euler", "steps": 2}, {"scale": 1.0}, 2 * 1),  # no guidance: one level
    ({"kind": "flow_heun", "steps": 2}, {"scale": 3.5}, 3 * 2),  # Heun: 2 steps - 1 evaluations
    ({"kind": "flow_euler", "steps": 4}, {"scale": 3.5, "interval": [0.5, 1.0]}, 3 * 2 + 1),
])
def test_generation_counts_network_evaluations(inputs, tmp_path, monkeypatch, scheduler, cfg, per_frame):
    model = make_model(scheduler=scheduler)
    forwards = spy_forward(monkeypatch, model.net)
    result = run(model, config(inputs, tmp_path, cfg=cfg))
    assert result.network_evaluations == sum(call["latents"].shape[0] for call in forwards) == per_frame * CLIPS
    assert result.evaluations_per_frame == per_frame


def test_evaluations_per_frame_weighs_each_clip_by_the_frames_it_kept():
    """A frame went through its clip's evaluations; the last clip is cut short (I1)."""
    sampler = ClipSampler.__new__(ClipSampler)
    sampler.clip_evaluations = [(4, 4), (2, 4), (6, 1)]  # (evaluations, frames kept) per clip
    assert sampler.network_evaluations == 12
    assert sampler.evaluations_per_frame == pytest.approx((16 + 8 + 6) / 9)


# ---- the ablation ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [None, "quick"])
def test_ablate_sampler_variants_share_experiment_tinys_training(registry, repo_root, profile):
    """Its variants differ only in generation: one training (experiment_tiny's), one video set each;
    the baseline's videos are experiment_tiny's own (the same video key)."""
    from memo_zoo.recipe.loader import load_recipe, validate_variants, variant_documents
    from memo_zoo.tasks.experiment import generation_key, training_key

    def keys(name: str) -> dict:
        loaded = load_recipe(repo_root / "recipes" / name, registry, profile=profile)
        resolved = validate_variants(variant_documents(loaded.document, loaded.source), registry, loaded.source)
        recipes = [(v.name, checked) for v, checked in resolved] or [(None, loaded.recipe)]
        return {variant: (training_key(r, r.task), generation_key(r, r.task, training_key(r, r.task)))
                for variant, r in recipes}

    sampler, (tiny,) = keys("ablate_sampler.yaml"), keys("experiment_tiny.yaml").values()
    assert {train for train, _ in sampler.values()} == {tiny[0]}
    assert len({video for _, video in sampler.values()}) == len(sampler) == 5
    assert sampler["euler"] == tiny
