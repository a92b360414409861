"""Expression guidance (docs/method.md E6): the latent expression classifier, its training, and the
guided velocity v' = v - s * grad_x0 log p(label | x0) / t with x0 = z_t - t v."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.generate.config import ExpressionGuidanceConfig, GenerateConfig
from memo_zoo.generate.expression_guidance import ExpressionGuide
from memo_zoo.model.latent_expression import ClassifierInfo, LatentExpressionClassifier, load_classifier
from memo_zoo.tasks.experiment_config import GenerationOptions
from memo_zoo.train.latent_expression import balanced_accuracy, draw_references, fit_classifier, split_speakers
from memo_zoo.train.part_configs import ExpressionClassifierTraining
from tests.unit.test_generate import OneEulerStep, config, inputs, make_model, one_thread, run, with_sampler  # noqa: F401

CHANNELS, SIDE = 4, 8


def classifier(seed: int = 0, channels: int = CHANNELS, width: int = 8, reference: bool = False
               ) -> LatentExpressionClassifier:
    torch.manual_seed(seed)
    return LatentExpressionClassifier(ClassifierInfo(channels, PAPER_LABELS, width, "test", reference)).eval()


def guide(scale: float = 1.0, interval=None, seed: int = 0, reference: bool = False) -> ExpressionGuide:
    options = ExpressionGuidanceConfig(classifier="unused.safetensors", scale=scale, interval=interval)
    return ExpressionGuide(options, classifier(seed, reference=reference), torch.device("cpu"))


def log_p(model, frames: torch.Tensor, label: int, reference: torch.Tensor | None = None) -> torch.Tensor:
    """sum over frames of log p(label | frame), in float64 (the finite differences' reference)."""
    model64 = LatentExpressionClassifier(model.info).double()
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        frames = frames.double().reshape(-1, CHANNELS, SIDE, SIDE)
        logits = model64(frames, reference.double()) if reference is not None else model64(frames)
        return torch.log_softmax(logits, -1)[:, label].sum()


@settings(max_examples=12, deadline=None)
@given(t=st.floats(0.05, 1.0), scale=st.floats(0.1, 4.0), label=st.integers(0, 7), seed=st.integers(0, 3),
       with_reference=st.booleans())
def test_the_guided_velocity_moves_the_clean_prediction_by_scale_times_the_gradient(t, scale, label, seed,
                                                                                    with_reference):
    g = guide(scale, seed=seed, reference=with_reference)
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn((1, 2, CHANNELS, SIDE, SIDE), generator=generator)
    velocity = torch.randn(sample.shape, generator=generator)
    # the portrait's latents: read by a reference-conditioned classifier, held fixed by the gradient
    reference = torch.randn((1, CHANNELS, SIDE, SIDE), generator=generator) if with_reference else None
    guided = g.velocity(sample, t, velocity, label, reference)
    clean, guided_clean = sample - t * velocity, sample - t * guided
    # x0' - x0 = s * grad, the gradient checked element by element against central differences.
    step = (guided_clean - clean) / scale
    flat = clean.reshape(-1)
    for index in torch.randperm(flat.numel(), generator=generator)[:6].tolist():
        h = 1e-4
        up, down = flat.clone().double(), flat.clone().double()
        up[index] += h
        down[index] -= h
        numeric = (log_p(g.classifier, up, label, reference) - log_p(g.classifier, down, label, reference)) / (2 * h)
        assert float(step.reshape(-1)[index]) == pytest.approx(float(numeric), rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("with_reference", [False, True])
def test_keep_out_boxes_leave_the_clean_prediction_there_and_the_rest_guided_as_before(with_reference):
    mouth = (0.28, 0.5, 0.72, 0.8)  # talking_world's mouth box: rows 4-5, columns 3-4 wholly inside on 8 x 8
    options = ExpressionGuidanceConfig(classifier="unused.safetensors", scale=3.0, keep_out=[mouth])
    kept = ExpressionGuide(options, classifier(2, reference=with_reference), torch.device("cpu"))
    free = guide(3.0, seed=2, reference=with_reference)
    generator = torch.Generator().manual_seed(5)
    sample = torch.randn((1, 3, CHANNELS, SIDE, SIDE), generator=generator)
    velocity = torch.randn(sample.shape, generator=generator)
    reference = torch.randn((1, CHANNELS, SIDE, SIDE), generator=generator) if with_reference else None
    t = 0.6
    clean = sample - t * velocity
    kept_step = (sample - t * kept.velocity(sample, t, velocity, 3, reference)) - clean
    free_step = (sample - t * free.velocity(sample, t, velocity, 3, reference)) - clean
    assert free_step[..., 4:6, 3:5].abs().max() > 1e-4  # the classifier does reach into the mouth
    torch.testing.assert_close(kept_step[..., 4:6, 3:5], torch.zeros_like(kept_step[..., 4:6, 3:5]))
    torch.testing.assert_close(kept_step[..., :4, :], free_step[..., :4, :])  # above the box: as before
    # a cell the box cuts moves by the share of it outside the box
    share = 1 - (0.375 - 0.28) / 0.125
    torch.testing.assert_close(kept_step[..., 4, 2], share * free_step[..., 4, 2], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("box", [[0.5, 0.2, 0.4, 0.8], [0.1, 0.2, 0.4, 1.2], [-0.1, 0.0, 0.5, 0.5]])
def test_a_keep_out_box_outside_the_frame_or_upside_down_is_refused_by_index(box):
    with pytest.raises(ValueError, match=r"keep_out\[1\]"):
        ExpressionGuidanceConfig(classifier="g.safetensors", keep_out=[[0.2, 0.2, 0.4, 0.4], box])


def test_a_reference_classifier_reads_the_difference_from_the_portrait_and_needs_it():
    model = classifier(4, reference=True)
    torch.manual_seed(0)
    x, portrait = torch.randn(3, CHANNELS, SIDE, SIDE), torch.randn(1, CHANNELS, SIDE, SIDE)
    with torch.no_grad():
        by_hand = model.head(model.body(torch.cat([x - portrait, x], dim=1)).flatten(1))
        torch.testing.assert_close(model(x, portrait), by_hand)  # one portrait for every frame
        torch.testing.assert_close(model(x, portrait.expand(3, -1, -1, -1)), by_hand)
    with pytest.raises(ValueError, match="reference"):
        model(x)
    with pytest.raises(MemoZooError, match="reference: true"):
        guide(reference=True).velocity(x[None], 0.5, torch.randn(1, 3, CHANNELS, SIDE, SIDE), 2)
    plain = guide()  # a plain classifier ignores a reference it is given
    sample, velocity = torch.randn(1, 3, CHANNELS, SIDE, SIDE), torch.randn(1, 3, CHANNELS, SIDE, SIDE)
    torch.testing.assert_close(plain.velocity(sample, 0.5, velocity, 2, portrait),
                               plain.velocity(sample, 0.5, velocity, 2))


def test_the_last_euler_step_returns_the_guided_prediction_and_raises_the_labels_probability():
    g = guide(scale=2.0)
    torch.manual_seed(1)
    sample, velocity = torch.randn(1, 3, CHANNELS, SIDE, SIDE), torch.randn(1, 3, CHANNELS, SIDE, SIDE)
    t, label = 0.1, 5
    clean = sample - t * velocity
    final = sample - t * g.velocity(sample, t, velocity, label)  # Euler from t to 0
    torch.testing.assert_close(final, clean + 2.0 * g.gradient(clean, label))
    frames = lambda x: x.reshape(-1, CHANNELS, SIDE, SIDE)  # noqa: E731
    with torch.no_grad():
        before = torch.softmax(g.classifier(frames(clean)), -1)[:, label]
        after = torch.softmax(g.classifier(frames(final)), -1)[:, label]
    assert bool((after > before).all())


def test_no_guidance_without_a_label_outside_the_interval_or_at_scale_zero():
    sample, velocity = torch.randn(1, 2, CHANNELS, SIDE, SIDE), torch.randn(1, 2, CHANNELS, SIDE, SIDE)
    no_emotion = len(PAPER_LABELS)
    assert guide().velocity(sample, 0.5, velocity, no_emotion) is velocity
    assert guide(interval=(0.0, 0.4)).velocity(sample, 0.5, velocity, 3) is velocity
    assert guide(interval=(0.0, 0.5)).velocity(sample, 0.5, velocity, 3) is not velocity  # edges included
    assert guide(scale=0.0).velocity(sample, 0.5, velocity, 3) is velocity


@pytest.mark.parametrize("reference", [False, True])
def test_the_gradient_works_inside_inference_mode(reference):
    g = guide(reference=reference)
    with torch.inference_mode():
        sample, velocity = torch.randn(1, 1, CHANNELS, SIDE, SIDE), torch.randn(1, 1, CHANNELS, SIDE, SIDE)
        portrait = torch.randn(1, CHANNELS, SIDE, SIDE)  # an inference tensor, as the sampler's is
        guided = g.velocity(sample, 0.5, velocity, 2, portrait)
    assert guided.shape == velocity.shape and not torch.equal(guided, velocity)


def test_save_and_load_round_trip_and_clear_refusals(tmp_path):
    model = classifier(3)
    path = tmp_path / "guide.safetensors"
    model.save(path)
    loaded = load_classifier(path, PAPER_LABELS, CHANNELS)
    x = torch.randn(5, CHANNELS, SIDE, SIDE)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.info == model.info and not loaded.info.reference
    with_reference = classifier(3, reference=True)
    with_reference.save(tmp_path / "relative.safetensors")
    loaded = load_classifier(tmp_path / "relative.safetensors", PAPER_LABELS, CHANNELS)
    assert loaded.info.reference and loaded.info == with_reference.info
    torch.testing.assert_close(loaded(x, x[:1]), with_reference(x, x[:1]))
    with pytest.raises(MissingWeightsError, match="missing.safetensors"):
        load_classifier(tmp_path / "missing.safetensors")
    with pytest.raises(MemoZooError, match="labels"):
        load_classifier(path, ("a", "b"))
    with pytest.raises(MemoZooError, match="8-channel|4-channel"):
        load_classifier(path, PAPER_LABELS, 8)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(MemoZooError, match="junk.safetensors"):
        load_classifier(tmp_path / "junk.safetensors")
    options = ExpressionGuidanceConfig(classifier=path)
    g = ExpressionGuide.load(options, PAPER_LABELS, torch.device("cpu"))
    with pytest.raises(MemoZooError, match="guide.safetensors"):
        g.check_latents(torch.zeros(1, 8, SIDE, SIDE))


@pytest.mark.parametrize("with_reference", [False, True])
def test_an_ensemble_follows_the_mean_of_its_members_gradients(with_reference):
    """x0' = x0 + s * m * (1/K) sum_k grad log p_k (E6's ensemble): the step equals the mean of the
    steps each member alone would take, keep_out mask included, and log_probs is the members' mean."""
    mouth = (0.28, 0.5, 0.72, 0.8)
    members = [classifier(seed, reference=reference) for seed, reference in ((1, with_reference), (2, False), (3, True))]
    files = ["a.safetensors", "b.safetensors", "c.safetensors"]
    options = ExpressionGuidanceConfig(classifier=files[0], ensemble=files[1:], scale=2.0, keep_out=[mouth])
    ensemble = ExpressionGuide(options, members[0], torch.device("cpu"), members[1:])
    alone = [ExpressionGuide(ExpressionGuidanceConfig(classifier=f, scale=2.0, keep_out=[mouth]), m,
                             torch.device("cpu")) for f, m in zip(files, members)]
    generator = torch.Generator().manual_seed(3)
    sample = torch.randn((1, 3, CHANNELS, SIDE, SIDE), generator=generator)
    velocity = torch.randn(sample.shape, generator=generator)
    portrait = torch.randn((1, CHANNELS, SIDE, SIDE), generator=generator)
    t, label = 0.4, 6
    step = sample - t * ensemble.velocity(sample, t, velocity, label, portrait)
    each = torch.stack([sample - t * g.velocity(sample, t, velocity, label, portrait) for g in alone])
    torch.testing.assert_close(step, each.mean(0), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(step, each[0], atol=1e-4)  # the members do pull differently
    frames = sample.reshape(-1, CHANNELS, SIDE, SIDE)
    with torch.no_grad():
        expected = torch.stack([torch.log_softmax(m(frames, portrait) if m.info.reference else m(frames), -1)
                                for m in members]).mean(0)
        torch.testing.assert_close(ensemble.log_probs(frames, portrait), expected)


def test_an_ensemble_member_of_other_labels_or_latents_is_refused_by_its_file(tmp_path):
    first, other = tmp_path / "first.safetensors", tmp_path / "wide.safetensors"
    classifier(1).save(first)
    classifier(2, channels=8).save(other)
    options = ExpressionGuidanceConfig(classifier=first, ensemble=[other])
    g = ExpressionGuide.load(options, PAPER_LABELS, torch.device("cpu"))
    assert [path for path, _ in g.members] == [first, other]
    with pytest.raises(MemoZooError, match="wide.safetensors: reads 8-channel"):
        g.check_latents(torch.zeros(1, CHANNELS, SIDE, SIDE))
    odd = LatentExpressionClassifier(ClassifierInfo(CHANNELS, PAPER_LABELS[::-1], 8, "test", False))
    with pytest.raises(MemoZooError, match="ensemble odd.safetensors reads the labels"):
        ExpressionGuide(ExpressionGuidanceConfig(classifier=first, ensemble=["odd.safetensors"]), classifier(1),
                        torch.device("cpu"), [odd])
    with pytest.raises(MemoZooError, match="names 1 classifiers, 0 were given"):
        ExpressionGuide(options, classifier(1), torch.device("cpu"))


def separable(seed: int, speakers: int = 10, frames: int = 40, spread: float = 1.0):
    """Latents whose class is a fixed pattern in the centre cells, under per-speaker offsets (std
    ``spread``) and noise."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.zeros(8, CHANNELS, SIDE, SIDE)
    patterns[:, :, 2:6, 2:6] = torch.randn((8, CHANNELS, 4, 4), generator=generator)
    latents, labels, names = [], [], []
    for speaker in range(speakers):
        face = spread * torch.randn((CHANNELS, SIDE, SIDE), generator=generator)
        for label in range(8):
            noise = 0.3 * torch.randn((frames // 8, CHANNELS, SIDE, SIDE), generator=generator)
            latents.append(face + patterns[label] + noise)
            labels.append(torch.full((frames // 8,), label))
            names += [f"p{speaker}"] * (frames // 8)
    return torch.cat(latents), torch.cat(labels), names


def test_fit_reads_held_out_speakers_and_is_seeded():
    latents, labels, speakers = separable(0)
    options = ExpressionClassifierTraining(epochs=15, batch_size=64, width=8, validation_fraction=0.2, seed=1)
    model, report = fit_classifier(latents, labels, speakers, PAPER_LABELS, "fp", options)
    assert report.validation_frames == 2 * 40 and report.train_frames == 8 * 40
    assert report.accuracy > 0.75 and report.balanced_accuracy > 0.75  # chance: 0.125
    assert sum(map(sum, report.confusion)) == report.validation_frames
    again, _ = fit_classifier(latents, labels, speakers, PAPER_LABELS, "fp", options)
    x = latents[:7]
    torch.testing.assert_close(again(x), model(x))
    assert model.info.vae_fingerprint == "fp" and not any(p.requires_grad for p in model.parameters())


def test_a_reference_classifier_learns_expressions_where_a_plain_one_learns_the_people():
    """Few speakers whose faces differ far more than their expressions: a plain classifier reads
    held-out speakers poorly; one that sees the difference from another frame of the same speaker
    reads them (the reason for ``reference``, docs/emotion_diagnosis.md section 12)."""
    latents, labels, speakers = separable(2, speakers=10, spread=4.0)
    clips = [f"{speaker}-{int(label)}" for speaker, label in zip(speakers, labels)]
    options = dict(epochs=20, batch_size=64, width=8, validation_fraction=0.3, seed=0)
    _, plain = fit_classifier(latents, labels, speakers, PAPER_LABELS, "fp", ExpressionClassifierTraining(**options))
    model, relative = fit_classifier(latents, labels, speakers, PAPER_LABELS, "fp",
                                     ExpressionClassifierTraining(reference=True, **options), clips)
    assert model.info.reference and relative.validation_frames == plain.validation_frames == 3 * 40
    assert relative.accuracy > 0.6 and relative.accuracy > plain.accuracy + 0.2, (relative.accuracy, plain.accuracy)
    with pytest.raises(ValueError, match="clip"):
        fit_classifier(latents, labels, speakers, PAPER_LABELS, "fp", ExpressionClassifierTraining(reference=True))
    with pytest.raises(MemoZooError, match="single clip"):  # the dataset names no speakers: speaker = clip
        fit_classifier(latents, labels, clips, PAPER_LABELS, "fp", ExpressionClassifierTraining(reference=True), clips)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=4), min_size=1, max_size=5),
       seed=st.integers(0, 99))
def test_references_come_from_another_clip_of_the_same_speaker(sizes, seed):
    speakers, clips = [], []
    for s, clip_sizes in enumerate(sizes):  # speaker s has clips of these frame counts
        for c, size in enumerate(clip_sizes):
            speakers += [f"s{s}"] * size
            clips += [f"s{s}c{c}"] * size
    drawn = draw_references(speakers, clips, torch.Generator().manual_seed(seed)).tolist()
    for i, j in enumerate(drawn):
        assert speakers[j] == speakers[i]
        assert (clips[j] != clips[i]) == (len(sizes[int(speakers[i][1:])]) > 1)
    assert drawn == draw_references(speakers, clips, torch.Generator().manual_seed(seed)).tolist()


def test_fit_refuses_labels_outside_the_classes():
    latents, labels, speakers = separable(0, speakers=2, frames=8)
    labels[0] = 8  # "no emotion" must be left out before training
    with pytest.raises(MemoZooError, match="emotion indices"):
        fit_classifier(latents, labels, speakers, PAPER_LABELS, "fp", ExpressionClassifierTraining(epochs=1))


@given(count=st.integers(2, 30), fraction=st.floats(0.01, 0.9), seed=st.integers(0, 99))
def test_held_out_speakers_are_a_proper_seeded_subset(count, fraction, seed):
    names = [f"s{i}" for i in range(count)]
    held = split_speakers(names * 2, fraction, seed)
    assert 1 <= len(held) < count and held <= set(names)
    assert held == split_speakers(list(reversed(names)), fraction, seed)


def test_balanced_accuracy_is_the_mean_recall_over_present_classes():
    matrix = np.array([[8, 2, 0], [0, 0, 0], [1, 1, 2]])
    assert balanced_accuracy(matrix) == pytest.approx((0.8 + 0.5) / 2)


def test_generation_with_a_guide_takes_the_guided_velocity(inputs, tmp_path):
    plain_sampler, guided_sampler = OneEulerStep(), OneEulerStep()
    run(with_sampler(make_model(), plain_sampler), config(inputs, tmp_path, emotion="sad", cfg={"scale": 1.0}))
    noise, plain = plain_sampler.calls[0]
    channels = noise.shape[2]
    path = tmp_path / "guide.safetensors"
    model = classifier(2, channels=channels)
    model.save(path)
    options = {"classifier": path, "scale": 1.5}
    run(with_sampler(make_model(), guided_sampler),
        config(inputs, tmp_path, emotion="sad", cfg={"scale": 1.0}, expression_guidance=options))
    same_noise, guided = guided_sampler.calls[0]
    torch.testing.assert_close(same_noise, noise)
    sad = PAPER_LABELS.index("sad")
    g = ExpressionGuide(ExpressionGuidanceConfig(**options), model, torch.device("cpu"))
    torch.testing.assert_close(guided, plain - 1.5 * g.gradient(noise - plain, sad), rtol=1e-4, atol=1e-5)


def test_generation_gives_a_reference_guide_the_portraits_latents(inputs, tmp_path):
    plain_sampler, guided_sampler = OneEulerStep(), OneEulerStep()
    run(with_sampler(make_model(), plain_sampler), config(inputs, tmp_path, emotion="sad", cfg={"scale": 1.0}))
    noise, plain = plain_sampler.calls[0]
    path = tmp_path / "relative.safetensors"
    guide_model = classifier(2, channels=noise.shape[2], reference=True)
    guide_model.save(path)
    model = with_sampler(make_model(), guided_sampler)
    encoded, encode = [], model.vae.encode
    model.vae.encode = lambda images: encoded.append(encode(images)) or encoded[-1]  # the portrait: the first call
    options = {"classifier": path, "scale": 1.5}
    run(model, config(inputs, tmp_path, emotion="sad", cfg={"scale": 1.0}, expression_guidance=options))
    _, guided = guided_sampler.calls[0]
    g = ExpressionGuide(ExpressionGuidanceConfig(**options), guide_model, torch.device("cpu"))
    expected = plain - 1.5 * g.gradient(noise - plain, PAPER_LABELS.index("sad"), encoded[0])
    torch.testing.assert_close(guided, expected, rtol=1e-4, atol=1e-5)


def test_the_option_at_its_default_leaves_the_generation_keys_unchanged():
    assert "expression_guidance" not in GenerationOptions().model_dump(mode="json")
    assert GenerateConfig.model_fields["expression_guidance"].default is None
    dumped = GenerationOptions(expression_guidance={"classifier": "g.safetensors", "scale": 2}).model_dump(mode="json")
    assert json.loads(json.dumps(dumped))["expression_guidance"]["scale"] == 2
    assert "keep_out" not in dumped["expression_guidance"]  # the sets generated before keep_out keep their names
    boxed = GenerationOptions(expression_guidance={"classifier": "g.safetensors", "keep_out": [[0.2, 0.5, 0.8, 0.8]]})
    assert boxed.model_dump(mode="json")["expression_guidance"]["keep_out"] == [[0.2, 0.5, 0.8, 0.8]]
    assert "ensemble" not in dumped["expression_guidance"]  # nor before the ensemble
    both = GenerationOptions(expression_guidance={"classifier": "g.safetensors", "ensemble": ["h.safetensors"]})
    assert both.model_dump(mode="json")["expression_guidance"]["ensemble"] == ["h.safetensors"]


class PoolVAE(torch.nn.Module):
    """A frozen stand-in autoencoder: 4 x 4 average pooling, then a fixed 1 x 1 projection to CHANNELS."""

    deterministic_encode = True

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.project = torch.nn.Conv2d(3, CHANNELS, 1)

    def encode(self, images):
        return self.project(torch.nn.functional.avg_pool2d(images, 4))


class Run:
    def __init__(self):
        self.metrics, self.dicts = {}, {}

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)

    def log_dict(self, data, name):
        self.dicts[name] = data


def classifier_context(tmp_path, emotions):
    from types import SimpleNamespace

    from memo_zoo.data.clip import ClipRecord
    from tests.data_fixtures import write_clip
    from tests.fake_datasets import ListDataset

    records = [ClipRecord(clip_id=f"c{i}", video=write_clip(tmp_path / f"c{i}.mp4"), speaker=f"p{i // 2}",
                          emotion=emotion) for i, emotion in enumerate(emotions)]
    vae = PoolVAE()
    recipe = SimpleNamespace(data=SimpleNamespace(dataset=SimpleNamespace(kind="list")), model=SimpleNamespace(vae={}))
    built = {"dataset": ListDataset(records), "vae": vae}
    return SimpleNamespace(recipe=recipe, build=lambda slot, config: built[slot], run=Run())


def test_the_experiment_trains_the_classifier_once_from_labelled_training_clips(tmp_path, monkeypatch):
    from memo_zoo.tasks.expression_classifier import ensure_classifier, labelled_latents
    from memo_zoo.train.config import TrainConfig

    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    train = TrainConfig(samples={"size": 32, "clip_frames": 4, "motion_frames": [2]})
    context = classifier_context(tmp_path, ["happy", "sad", None, "angry", "happy", "sad"])
    latents, labels, speakers, clips, frame_labels, intensity = labelled_latents(context, PoolVAE(), train, stride=2)
    assert frame_labels is None and intensity is None  # per-frame truth only when asked for
    assert latents.shape == (5 * 8, CHANNELS, 8, 8)  # the unlabelled clip is left out; every 2nd of 16 frames
    assert labels.tolist() == [3] * 8 + [5] * 8 + [0] * 8 + [3] * 8 + [5] * 8
    assert speakers[:8] == ["p0"] * 8 and speakers[16:24] == ["p1"] * 8
    assert clips[:8] == ["c0"] * 8 and clips[16:24] == ["c3"] * 8

    target = tmp_path / "checkpoints" / "guide.safetensors"
    with pytest.raises(MemoZooError, match="train_expression_classifier"):
        ensure_classifier(context, target, None, train)
    with pytest.raises(MemoZooError, match=r"expression_guidance.ensemble .*guide.safetensors does not exist; train "
                                           r"it first with a run whose expression_guidance.classifier it is"):
        ensure_classifier(context, target, None, train, field="ensemble")
    options = ExpressionClassifierTraining(epochs=1, width=4, validation_fraction=0.4)
    assert ensure_classifier(context, target, options, train) == target
    loaded = load_classifier(target, PAPER_LABELS, CHANNELS)
    record = json.loads(target.with_suffix(".json").read_text())
    assert record["train_frames"] + record["validation_frames"] == 5 * 16 and record["options"]["epochs"] == 1
    assert set(context.run.metrics) >= {"expression_classifier/accuracy", "expression_classifier/balanced_accuracy"}
    assert "expression_classifier.json" in context.run.dicts
    before = target.stat().st_mtime_ns
    assert ensure_classifier(context, target, options, train) == target  # an existing file is used as it is
    assert target.stat().st_mtime_ns == before and loaded.info.width == 4
    other = classifier_context(tmp_path, ["happy"])
    with torch.no_grad():
        other.build("vae", None).project.weight.add_(1.0)  # another autoencoder: its latents differ
    with pytest.raises(MemoZooError, match="another autoencoder"):
        ensure_classifier(other, target, options, train)
    relative = ensure_classifier(context, tmp_path / "relative.safetensors",
                                 options.model_copy(update={"reference": True}), train)
    assert load_classifier(relative, PAPER_LABELS, CHANNELS).info.reference


def test_the_classifier_never_learns_the_people_the_experiment_is_scored_on(tmp_path, monkeypatch):
    from pydantic import BaseModel

    from memo_zoo.tasks.expression_classifier import ensure_classifier, held_out_speakers
    from memo_zoo.train.config import TrainConfig
    from tests.fake_datasets import ListDataset

    class World(BaseModel):
        kind: str = "world"
        seed: int = 0
        split: str = "train"

    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    train = TrainConfig(samples={"size": 32, "clip_frames": 4, "motion_frames": [2]})
    context = classifier_context(tmp_path, ["happy", "sad", "angry", "happy", "sad", "fearful"])
    records = context.build("dataset", None).records
    built = {"vae": PoolVAE()}
    # the world's test split holds out p2; its train split lists everyone here, as a world of more
    # identities than the network trains on would
    context.build = lambda slot, config: built.get(slot) or ListDataset(
        [r for r in records if r.speaker == "p2"] if config.split == "test" else records)
    context.recipe.data.dataset = World()
    held = held_out_speakers(context, World(), "test")
    assert held == {"p2"}
    assert held_out_speakers(context, World(), "train") == frozenset()  # scored on the training people
    assert held_out_speakers(context, None, "test") == frozenset()
    options = ExpressionClassifierTraining(epochs=1, width=4, validation_fraction=0.4, dataset={"split": "train"})
    target = tmp_path / "guide.safetensors"
    with pytest.raises(MemoZooError, match=r"train_expression_classifier.dataset \(world\) has clips of p2, "
                                           "speakers the experiment holds out"):
        ensure_classifier(context, target, options, train, held)
    assert not target.exists()
    # another seed draws other people under the same names: nothing to check
    other_seed = options.model_copy(update={"dataset": {"split": "train", "seed": 1}})
    assert ensure_classifier(context, target, other_seed, train, held) == target


class TruthListDataset:
    """Clips with per-frame truth at twice the frame cache's rate: the first half of each clip shows
    happy, the second sad, the intensity rising linearly from 0 to 1 over the clip."""

    def __init__(self, records):
        self.records = records

    def clips(self):
        return list(self.records)

    def frame_truth(self, record):
        from memo_zoo.data.truth import ClipTruth

        count = 32  # 16 frames at 25 fps, truth at 50 fps
        intensity = np.arange(count) / (count - 1)
        return ClipTruth(frames={"intensity": intensity}, emotion=["happy"] * 16 + ["sad"] * 16, fps=50.0)


def test_min_intensity_trains_on_clear_frames_with_their_own_true_label(tmp_path, monkeypatch):
    from memo_zoo.data.truth import ClipTruth
    from memo_zoo.tasks.expression_classifier import ensure_classifier, labelled_latents
    from memo_zoo.train.config import TrainConfig

    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    train = TrainConfig(samples={"size": 32, "clip_frames": 4, "motion_frames": [2]})
    context = classifier_context(tmp_path, ["happy", "angry", "happy", "angry"])
    plain = context.build("dataset", None)
    with pytest.raises(MemoZooError, match=r"min_intensity needs per-frame truth, which data.dataset \(list\)"):
        labelled_latents(context, PoolVAE(), train, 2, frame_truth=True)
    with pytest.raises(MemoZooError, match="read the latents with frame_truth"):
        labelled_latents(context, PoolVAE(), train, 2).select(0.5)
    built = {"dataset": TruthListDataset(plain.records), "vae": PoolVAE()}
    context.build = lambda slot, config: built[slot]
    data = labelled_latents(context, PoolVAE(), train, 2, frame_truth=True)
    # cache frames 0, 2, ..., 14 at 25 fps are read at the middle of their display: truth frames 1, 5, ..., 29
    at = np.arange(8) * 4 + 1
    assert data.frame_labels.tolist() == [3 if i < 16 else 5 for i in at] * 4  # happy, then sad
    assert torch.allclose(data.intensity, torch.tensor(np.tile(at / 31, 4), dtype=torch.float32))
    assert data.labels.tolist() == [3] * 8 + [0] * 8 + [3] * 8 + [0] * 8  # the clips' own labels are kept
    assert data.select(None) is data
    clear = data.select(0.5)  # truth frames 17, 21, 25, 29 of every clip
    assert clear.labels.tolist() == [5] * 16 and clear.latents.shape[0] == 16
    kept = torch.tensor([4, 5, 6, 7]).repeat(4) + torch.arange(4).repeat_interleave(4) * 8  # the last 4 of every 8
    assert torch.equal(clear.latents, data.latents[kept])
    assert clear.clips == ["c0"] * 4 + ["c1"] * 4 + ["c2"] * 4 + ["c3"] * 4
    with pytest.raises(MemoZooError, match="min_intensity 1: no frame"):
        data.select(1.0)
    built["dataset"].frame_truth = lambda record: ClipTruth(frames={"intensity": np.ones(32)}, emotion=["joyful"] * 32,
                                                            fps=50.0)
    with pytest.raises(MemoZooError, match="clip c0's per-frame truth: emotion 'joyful' is not in the paper label"):
        labelled_latents(context, PoolVAE(), train, 2, frame_truth=True)
    del built["dataset"].frame_truth

    options = ExpressionClassifierTraining(epochs=1, width=4, validation_fraction=0.5, min_intensity=0.5,
                                           frame_stride=2)
    target = ensure_classifier(context, tmp_path / "clear.safetensors", options, train)
    record = json.loads(target.with_suffix(".json").read_text())
    assert record["train_frames"] + record["validation_frames"] == 16 and record["options"]["min_intensity"] == 0.5
    with pytest.raises(ValueError, match="min_intensity"):
        ExpressionClassifierTraining(min_intensity=1.5)


def test_a_list_of_datasets_gives_the_classifier_the_people_of_every_one(tmp_path, monkeypatch):
    from pydantic import BaseModel, ValidationError

    from memo_zoo.tasks.expression_classifier import classifier_latents, ensure_classifier
    from memo_zoo.train.config import TrainConfig
    from tests.fake_datasets import ListDataset

    class World(BaseModel):
        kind: str = "world"
        seed: int = 0
        clips_per_identity: int = 2

    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    train = TrainConfig(samples={"size": 32, "clip_frames": 4, "motion_frames": [2]})
    context = classifier_context(tmp_path, ["happy", "sad", "angry", "happy", "sad", "fearful"])
    records = context.build("dataset", None).records  # p0, p1, p2: two clips each
    built = {"vae": PoolVAE()}
    # every seed's world names its people p0, p1, ... (other people): seed s lists the first s + 1
    context.build = lambda slot, config: built.get(slot) or ListDataset(records[:2 * (config.seed + 1)])
    context.recipe.data.dataset = World()
    options = ExpressionClassifierTraining(epochs=1, width=4, frame_stride=4, dataset=[{"seed": 1}, {"seed": 2}])
    data = classifier_latents(context, PoolVAE(), train, options, frozenset({"p0"}))
    assert data.latents.shape[0] == (4 + 6) * 4 and data.labels.shape == (40,) and data.frame_labels is None
    assert sorted(set(data.speakers)) == ["d0/p0", "d0/p1", "d1/p0", "d1/p1", "d1/p2"]  # five people, not three
    assert data.clips[:4] == ["d0/c0"] * 4 and data.clips[-4:] == ["d1/c5"] * 4
    assert data.labels[:8].tolist() == [3] * 4 + [5] * 4
    single = classifier_latents(context, PoolVAE(), train, options.model_copy(update={"dataset": {"seed": 1}}))
    assert single.speakers[0] == "p0" and single.latents.shape[0] == 16  # one dataset: its own names
    # an entry of the recipe's own world (no other seed) still may not teach a held-out person
    mixed = options.model_copy(update={"dataset": [{"seed": 1}, {"clips_per_identity": 8}]})
    with pytest.raises(MemoZooError, match="has clips of p0, speakers the experiment holds out"):
        ensure_classifier(context, tmp_path / "mixed.safetensors", mixed, train, frozenset({"p0"}))
    target = ensure_classifier(context, tmp_path / "two.safetensors", options, train, frozenset({"p0"}))
    record = json.loads(target.with_suffix(".json").read_text())
    assert record["train_frames"] + record["validation_frames"] == 40
    assert all(name.startswith("d") for name in record["validation_speakers"])
    with pytest.raises(ValidationError, match="an empty list names no clips"):
        ExpressionClassifierTraining(dataset=[])


def test_bad_dataset_options_for_the_classifier_name_the_field(tmp_path):
    from types import SimpleNamespace

    from pydantic import BaseModel

    from memo_zoo.tasks.expression_classifier import labelled_latents
    from memo_zoo.train.config import TrainConfig

    class World(BaseModel):
        kind: str = "world"
        identities: int = 4

    context = SimpleNamespace(recipe=SimpleNamespace(data=SimpleNamespace(dataset=World())), build=None)
    with pytest.raises(MemoZooError, match=r"train_expression_classifier.dataset \(world\): identities"):
        labelled_latents(context, PoolVAE(), TrainConfig(), 1, {"identities": "many"})
