"""Emotion detectors (issue 6): E5 framing, prosody_mlp, emotion2vec_mlp through funasr, checkpoints, bad input.

The emotion2vec tests load a TINY random-init emotion2vec written in tmp in exactly the layout
funasr reads offline (config.yaml + model.pt + tokens.txt), through the same loader the real
base / large folders go through.
"""

from __future__ import annotations

import logging
import random
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from memo_zoo.emotion import EMOTION2VEC_LABELS, PAPER_LABELS
from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo_plugins.emotion import emotion2vec, prosody
from memo_zoo_plugins.emotion.mlp_head import MLPHead, UntrainedDetectorError, load_head, save_head, sidecar_path
from memo_zoo.emotion.segments import (
    EmotionInputWarning, clip_label, frame_windows, label_audio_file, prepare_audio, segment_labels)
from tests.data_fixtures import write_audio

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: these runs are tiny, and on a shared 2-core machine a second thread mostly waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


RATE = 16_000


def tone(seconds: float, hz: float = 150.0, amplitude: float = 0.3, harmonics: int = 6) -> np.ndarray:
    """A voiced-like periodic signal (fundamental + decaying harmonics) at 16 kHz."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, harmonics + 1))
    return (amplitude * wave / np.max(np.abs(wave))).astype(np.float32)


def varied(seconds: float = 8.0) -> np.ndarray:
    """Pitch glides, loudness changes and pauses: windows that differ from one another."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 110 + 80 * np.sin(2 * np.pi * 0.15 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.15 + 0.25 * (np.sin(2 * np.pi * 0.4 * t) > -0.3) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.07 * t))
    return (envelope * wave / 3).astype(np.float32)


@pytest.fixture(scope="module")
def prosody_checkpoint(tmp_path_factory) -> Path:
    """A prosody_mlp checkpoint with a random (but fixed) head: labels are arbitrary, the machinery is real."""
    torch.manual_seed(0)
    untrained = prosody.untrained(prosody.ProsodyMLPConfig(checkpoint="not read"))
    head = untrained.new_head()
    with torch.no_grad():  # spread the logits so that different windows get different argmaxes
        head.out.weight.mul_(20.0)
    return untrained.with_head(head).save(tmp_path_factory.mktemp("heads") / "prosody.safetensors")


@pytest.fixture(scope="module")
def detector(prosody_checkpoint):
    return prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(prosody_checkpoint)))


# ---- E5 framing ---------------------------------------------------------------------------------

def test_every_frame_gets_a_centred_three_second_window_clamped_at_the_ends():
    samples, fps, frames = 10 * RATE, 25.0, 250
    w = frame_windows(samples, fps, frames)
    starts, ends = w.starts[w.frame_window], w.ends[w.frame_window]
    assert np.all(ends - starts == 3 * RATE) and starts.min() == 0 and ends.max() == samples
    centres = (np.arange(frames) + 0.5) / fps * RATE
    inside = (centres >= 1.5 * RATE) & (centres <= samples - 1.5 * RATE)
    assert np.allclose((starts + ends)[inside] / 2, centres[inside], atol=1)
    assert np.all(starts[~inside & (centres < RATE * 5)] == 0)
    assert np.all(ends[~inside & (centres > RATE * 5)] == samples)
    assert len(w) == len(np.unique(starts))  # the clamped windows at each end are classified once


def test_audio_shorter_than_a_window_is_one_window_over_all_of_it():
    w = frame_windows(2 * RATE, 25.0, 50)
    assert len(w) == 1 and (w.starts[0], w.ends[0]) == (0, 2 * RATE) and np.all(w.frame_window == 0)


def test_stride_classifies_the_middle_frame_of_each_block_and_holds_it():
    full, strided = frame_windows(20 * RATE, 25.0, 500), frame_windows(20 * RATE, 25.0, 500, stride=5)
    assert len(strided) < len(full) / 4
    starts = strided.starts[strided.frame_window]
    for block in range(100):
        assert len(set(starts[block * 5: block * 5 + 5])) == 1
        assert starts[block * 5] == full.starts[full.frame_window][block * 5 + 2]


def test_segment_labels_majority_and_first_occurrence_breaks_ties():
    labels = torch.tensor([3, 3, 1, 1, 2, 5, 5, 5, 0])
    assert segment_labels(labels, 4).tolist() == [3, 5, 0]
    assert segment_labels(torch.tensor([1, 3, 3, 1]), 4).tolist() == [1]
    assert clip_label(torch.tensor([2, 2, 7, 7, 7])) == 7


@given(st.lists(st.integers(0, 4), min_size=1, max_size=40), st.integers(1, 12))
def test_segment_labels_match_a_plain_count(labels, length):
    got = segment_labels(torch.tensor(labels), length).tolist()
    for k, label in enumerate(got):
        chunk = labels[k * length:(k + 1) * length]
        best = max(chunk.count(c) for c in set(chunk))
        tied = [c for c in chunk if chunk.count(c) == best]
        assert label == tied[0]
    assert len(got) == -(-len(labels) // length)


# ---- prosody backbone ---------------------------------------------------------------------------

def test_pitch_tracker_finds_the_fundamental_and_ignores_silence_and_noise():
    settings = prosody.ProsodyFeatures()
    for hz in (90.0, 150.0, 260.0):
        tracks = prosody.frame_features(tone(1.0, hz), settings)
        f0 = 100 * 2 ** (tracks.f0[5:-5] / 12)
        assert tracks.voiced[5:-5].all() and np.allclose(f0, hz, rtol=0.02)
    silent = prosody.frame_features(np.zeros(RATE, np.float32), settings)
    assert not silent.voiced.any() and np.allclose(silent.loudness, settings.floor_db)
    noise = np.random.default_rng(0).standard_normal(RATE).astype(np.float32) * 0.2
    assert prosody.frame_features(noise, settings).voiced.mean() < 0.1


def test_window_statistics_from_prefix_sums_equal_the_direct_ones():
    settings = prosody.ProsodyFeatures()
    audio = varied(6.0)
    tracks = prosody.frame_features(audio, settings)
    first, last = np.array([0, 37, 120, 300]), np.array([300, 337, 420, 601])
    shared = prosody.window_statistics(tracks, first, last)
    for row, (a, b) in enumerate(zip(first, last)):
        loud, voiced, f0, mel = tracks.loudness[a:b], tracks.voiced[a:b], tracks.f0[a:b], tracks.logmel[a:b]
        t = np.arange(a, b) * 0.01
        assert np.allclose(shared[row, :16], mel.mean(axis=0), atol=1e-6)
        assert np.allclose(shared[row, 16:32], mel.std(axis=0), atol=1e-4)
        scalars = shared[row, 32:44]
        assert np.isclose(scalars[0], loud.mean()) and np.isclose(scalars[1], loud.std(), atol=1e-5)
        assert np.isclose(scalars[2], np.polyfit(t, loud, 1)[0], rtol=1e-6, atol=1e-6)
        assert np.isclose(scalars[4], voiced.mean())
        assert np.isclose(scalars[5], f0[voiced].mean()) and np.isclose(scalars[6], f0[voiced].std(), atol=1e-5)
        assert np.isclose(scalars[7], np.polyfit(t[voiced], f0[voiced], 1)[0], atol=1e-6)
        assert np.isclose(shared[row, 44:].sum(), 2.0)  # two histograms, each summing to 1 over voiced frames


def test_window_features_of_a_long_audio_are_computed_once_and_fast():
    audio = np.tile(varied(8.0), 15)  # 2 minutes
    backbone = prosody.ProsodyBackbone(prosody.ProsodyFeatures())
    w = frame_windows(len(audio), 25.0, 3000)
    features = backbone.window_features(audio, w.starts, w.ends)
    assert features.shape == (len(w), backbone.feature_dim) and torch.isfinite(features).all()


# ---- detectors ----------------------------------------------------------------------------------

def test_registered_detectors(registry):
    assert {"fixed", "prosody_mlp", "emotion2vec_mlp"} <= set(registry.kinds("emotion_detector"))


def test_prosody_detector_needs_a_checkpoint_and_refuses_to_label_untrained(tmp_path):
    with pytest.raises(ValueError, match="checkpoint"):
        prosody.ProsodyMLPConfig()
    with pytest.raises(MissingWeightsError, match="not found"):
        prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(tmp_path / "absent.safetensors")))
    detector = prosody.untrained(prosody.ProsodyMLPConfig(checkpoint=str(tmp_path / "absent.safetensors")))
    assert not detector.trained and detector.fingerprint is None
    with pytest.raises(UntrainedDetectorError, match=r"untrained: give `checkpoint`"):
        detector.frame_labels(torch.from_numpy(varied(4.0)), RATE, 25.0, 100)


def test_trained_detector_labels_every_frame_deterministically(detector):
    audio = torch.from_numpy(varied(8.0))
    labels = detector.frame_labels(audio, RATE, 25.0, 200)
    assert labels.shape == (200,) and labels.dtype == torch.long
    assert 0 <= int(labels.min()) and int(labels.max()) < len(PAPER_LABELS)
    assert len(set(labels.tolist())) > 1, "different windows should not all look alike to a random head"
    assert torch.equal(labels, detector.frame_labels(audio, RATE, 25.0, 200))
    strided = prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(detector.checkpoint), stride=5))
    held = strided.frame_labels(audio, RATE, 25.0, 200)
    assert torch.equal(held, labels[torch.arange(200) // 5 * 5 + 2])


def test_silence_is_labelled_neutral_with_a_warning(detector):
    with pytest.warns(EmotionInputWarning, match="silent"):
        labels = detector.frame_labels(torch.zeros(2 * RATE), RATE, 25.0, 50)
    assert set(labels.tolist()) == {PAPER_LABELS.index("neutral")}
    quiet = prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(detector.checkpoint), silence_label="sad"))
    with pytest.warns(EmotionInputWarning):
        assert set(quiet.frame_labels(torch.zeros(RATE), RATE, 25.0, 25).tolist()) == {PAPER_LABELS.index("sad")}


def test_audio_shorter_than_a_window_and_tiny_audio(detector):
    labels = detector.frame_labels(torch.from_numpy(tone(1.2)), RATE, 25.0, 30)
    assert len(set(labels.tolist())) == 1  # one window: the whole audio
    with pytest.warns(EmotionInputWarning, match="zero-padded"):
        assert detector.frame_labels(torch.from_numpy(tone(0.03)), RATE, 25.0, 1).shape == (1,)


def test_clipped_and_out_of_range_audio_warn_and_still_label(detector):
    clipped = np.clip(varied(4.0) * 8, -1, 1)
    with pytest.warns(EmotionInputWarning, match="full scale"):
        assert detector.frame_labels(torch.from_numpy(clipped), RATE, 25.0, 100).shape == (100,)
    hot = varied(1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert np.abs(prepare_audio(hot * (1.2 / np.abs(hot).max()), RATE)).max() == 1.0
    assert any("clamped" in str(w.message) for w in caught)


@pytest.mark.parametrize("audio, message", [
    (np.zeros(0, np.float32), "no samples"),
    (np.array([0.1, np.nan, 0.2], np.float32), "non-finite"),
    (varied(1.0) * 30000, "unscaled"),
    (np.zeros((3, 4, 5), np.float32), "1-D"),
])
def test_unusable_audio_is_refused_with_the_reason(detector, audio, message):
    with pytest.raises(MemoZooError, match=message):
        detector.frame_labels(torch.from_numpy(audio), RATE, 25.0, 10)


def test_integer_stereo_and_48k_tensors_are_converted(detector):
    audio = varied(4.0)
    reference = detector.frame_labels(torch.from_numpy(audio), RATE, 25.0, 100)
    as_int16 = torch.from_numpy((audio * 32767).astype(np.int16))
    assert torch.equal(detector.frame_labels(as_int16, RATE, 25.0, 100), reference)
    stereo = torch.from_numpy(np.stack([audio, audio]))
    assert torch.equal(detector.frame_labels(stereo, RATE, 25.0, 100), reference)
    t48 = np.interp(np.arange(len(audio) * 3) / 3, np.arange(len(audio)), audio).astype(np.float32)
    agree = (detector.frame_labels(torch.from_numpy(t48), 48_000, 25.0, 100) == reference).float().mean()
    assert agree > 0.9


def _write_u8_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> Path:
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_u8", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((audio * 127 + 128).astype(np.uint8)[None], format="u8", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("kind", ["u8", "48k_stereo", "m4a"])
def test_audio_files_of_any_format_are_labelled_and_cached(detector, tmp_path, kind, monkeypatch):
    if kind == "u8":
        path = _write_u8_wav(tmp_path / "eight_bit.wav", varied(4.0))
    elif kind == "48k_stereo":
        path = write_audio(tmp_path / "stereo48.wav", seconds=4.0, rate=48_000, channels=2)
    else:
        path = write_audio(tmp_path / "speech.m4a", seconds=4.0)
    cache = tmp_path / "cache"
    labels = label_audio_file(detector, path, 25.0, cache_dir=cache)
    assert labels.shape[0] in (100, 101) and int(labels.max()) < len(PAPER_LABELS)  # AAC pads its last frame
    assert len(list(cache.glob("*.npy"))) == 1
    monkeypatch.setattr(type(detector), "frame_labels", lambda *a: pytest.fail("the cache was not used"))
    assert torch.equal(label_audio_file(detector, path, 25.0, cache_dir=cache), labels)


def test_cache_entry_is_keyed_by_file_content_identity_and_detector(detector, tmp_path, prosody_checkpoint):
    path = write_audio(tmp_path / "a.wav", seconds=3.0)
    cache = tmp_path / "cache"
    label_audio_file(detector, path, 25.0, cache_dir=cache)
    other = prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(prosody_checkpoint), silence_db=-30.0))
    label_audio_file(other, path, 25.0, cache_dir=cache)  # other options: another entry
    write_audio(tmp_path / "b.wav", seconds=5.0).replace(path)  # edited file: another entry
    assert label_audio_file(detector, path, 25.0, cache_dir=cache).shape == (125,)
    assert len(list(cache.glob("*.npy"))) == 3


# ---- checkpoints --------------------------------------------------------------------------------

def test_checkpoint_round_trip_with_readable_json(tmp_path):
    torch.manual_seed(1)
    head = MLPHead(10, 8, (12, 11, 10, 9))
    head.fit_normalisation(torch.randn(50, 10) * 3 + 1)
    path = save_head(tmp_path / "h.safetensors", head, kind="prosody_mlp", label_set="paper", backbone={"x": 1})
    assert sidecar_path(path).is_file() and not list(tmp_path.glob(".*"))  # no temp files left
    loaded, description, _ = load_head(path, kind="prosody_mlp", label_set="paper", in_dim=10)
    assert description["labels"] == list(PAPER_LABELS) and len(list(loaded.modules())) > 5
    x = torch.randn(4, 10)
    assert torch.equal(loaded(x), head.eval()(x))


def test_head_with_the_wrong_class_count_is_refused_naming_file_and_counts(tmp_path):
    path = save_head(tmp_path / "nine.safetensors", MLPHead(10, 9), kind="prosody_mlp", label_set="emotion2vec",
                     backbone={})
    with pytest.raises(MemoZooError) as error:
        load_head(path, kind="prosody_mlp", label_set="paper")
    assert str(path) in str(error.value) and "9 classes" in str(error.value) and "has 8" in str(error.value)
    head, _, _ = load_head(path, kind="prosody_mlp", label_set="emotion2vec")
    assert head.num_classes == len(EMOTION2VEC_LABELS)


def test_bad_checkpoints_are_refused_with_the_reason(tmp_path, prosody_checkpoint):
    other = save_head(tmp_path / "e2v.safetensors", MLPHead(10, 8), kind="emotion2vec_mlp", label_set="paper",
                      backbone={})
    with pytest.raises(MemoZooError, match="'emotion2vec_mlp' checkpoint, not one of 'prosody_mlp'"):
        prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(other)))
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(MemoZooError, match="not a safetensors file"):
        prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(tmp_path / "junk.safetensors")))
    with pytest.raises(MemoZooError, match="n_mels: recipe 32 vs checkpoint 16"):
        prosody.build(prosody.ProsodyMLPConfig(checkpoint=str(prosody_checkpoint),
                                               features=prosody.ProsodyFeatures(n_mels=32)))


# ---- emotion2vec through funasr -----------------------------------------------------------------

TINY_CONFIG = """\
model: Emotion2vec
model_conf:
    loss_beta: 0.0
    loss_scale: null
    depth: 2
    start_drop_path_rate: 0.0
    end_drop_path_rate: 0.0
    num_heads: 2
    norm_eps: 1e-05
    norm_affine: true
    encoder_dropout: 0.1
    post_mlp_drop: 0.1
    attention_dropout: 0.1
    activation_dropout: 0.0
    dropout_input: 0.0
    layerdrop: 0.05
    embed_dim: {dim}
    mlp_ratio: 2.0
    layer_norm_first: false
    average_top_k_layers: 2
    end_of_block_targets: false
    clone_batch: 8
    normalize: true
    modalities:
        audio:
            type: AUDIO
            prenet_depth: 1
            prenet_layerdrop: 0.05
            prenet_dropout: 0.1
            start_drop_path_rate: 0.0
            end_drop_path_rate: 0.0
            num_extra_tokens: 10
            init_extra_token_zero: true
            mask_noise_std: 0.01
            mask_prob_min: null
            mask_prob: 0.5
            inverse_mask: false
            mask_prob_adjust: 0.05
            keep_masked_pct: 0.0
            mask_length: 5
            add_masks: false
            remove_masks: false
            mask_dropout: 0.0
            encoder_zero_mask: true
            mask_channel_prob: 0.0
            mask_channel_length: 64
            ema_local_encoder: false
            local_grad_mult: 1.0
            use_alibi_encoder: true
            alibi_scale: 1.0
            learned_alibi: false
            alibi_max_pos: null
            learned_alibi_scale: true
            learned_alibi_scale_per_head: true
            learned_alibi_scale_per_layer: false
            num_alibi_heads: 2
            model_depth: 2
            decoder: null
            extractor_mode: layer_norm
            feature_encoder_spec: '[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16,2,2)] + [(16,2,2)]'
            conv_pos_width: 5
            conv_pos_groups: 2
            conv_pos_depth: 1
            conv_pos_pre_ln: false
tokenizer: CharTokenizer
tokenizer_conf:
  unk_symbol: <unk>
  split_with_space: true
"""
# emotion2vec+'s tokens.txt: its 9 classes (spec §10), Chinese/English as released.
TOKENS = ("生气/angry\n厌恶/disgusted\n恐惧/fearful\n开心/happy\n中立/neutral\n其他/other\n难过/sad\n"
          "吃惊/surprised\n<unk>\n")


def write_tiny_emotion2vec(folder: Path, dim: int = 32, seed: int = 0) -> Path:
    """A random-init emotion2vec in funasr's offline folder layout (what ModelScope / HF ship)."""
    import yaml
    from funasr.models.emotion2vec.model import Emotion2vec

    folder.mkdir(parents=True, exist_ok=True)
    config = TINY_CONFIG.replace("{dim}", str(dim))
    (folder / "config.yaml").write_text(config)
    (folder / "tokens.txt").write_text(TOKENS, encoding="utf-8")
    torch.manual_seed(seed)
    model = Emotion2vec(**yaml.safe_load(config), vocab_size=9)  # vocab 9: the released classifier's projection
    torch.save(model.state_dict(), folder / "model.pt")
    return folder


@pytest.fixture(scope="module")
def tiny_e2v(tmp_path_factory) -> Path:
    return write_tiny_emotion2vec(tmp_path_factory.mktemp("weights") / "emotion2vec_tiny")


def test_emotion2vec_loads_offline_through_funasr_and_embeds_batches(tiny_e2v):
    threads = torch.get_num_threads()
    rng_before = torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    level = logging.root.manager.disable
    backbone = emotion2vec.Emotion2vecBackbone(str(tiny_e2v), device="cpu", batch_size=3)
    assert type(backbone.model).__name__ == "Emotion2vec" and backbone.feature_dim == 32
    assert not any(p.requires_grad for p in backbone.model.parameters()) and not backbone.model.training
    state = torch.load(tiny_e2v / "model.pt")
    assert all(torch.equal(t, state[k]) for k, t in backbone.model.state_dict().items())  # really loaded
    # funasr reseeds every RNG and sets the thread count; neither may leak out.
    assert torch.get_num_threads() == threads and logging.root.manager.disable == level
    assert torch.equal(torch.random.get_rng_state(), rng_before[0]) and random.getstate() == rng_before[1]
    assert np.array_equal(np.random.get_state()[1], rng_before[2])
    audio = varied(5.0)
    starts = np.array([0, 8000, 16000, 24000, 32000])
    batched = backbone.window_features(audio, starts, starts + 3 * RATE)
    alone = torch.cat([backbone.window_features(audio, starts[i:i + 1], starts[i:i + 1] + 3 * RATE) for i in range(5)])
    assert batched.shape == (5, 32) and torch.allclose(batched, alone, atol=1e-5)
    # funasr's own utterance embedding of one window: mean over time of extract_features
    window = torch.from_numpy(audio[:3 * RATE])[None]
    with torch.no_grad():
        reference = backbone.model.extract_features(torch.nn.functional.layer_norm(window, window.shape),
                                                    padding_mask=None)["x"].mean(dim=1)
    assert torch.allclose(batched[0], reference[0], atol=1e-5)


def test_emotion2vec_mlp_labels_frames_with_a_head(tiny_e2v, tmp_path):
    untrained = emotion2vec.untrained(emotion2vec.Emotion2vecMLPConfig(
        backbone=str(tiny_e2v), head=str(tmp_path / "head.safetensors"), device="cpu"))
    with pytest.raises(UntrainedDetectorError, match="untrained"):
        untrained.frame_labels(torch.from_numpy(varied(2.0)), RATE, 25.0, 50)
    torch.manual_seed(0)
    head_path = untrained.with_head(untrained.new_head()).save(tmp_path / "head.safetensors")
    config = emotion2vec.Emotion2vecMLPConfig(backbone=str(tiny_e2v), head=str(head_path), device="cpu",
                                              stride=10, label_set="paper")
    detector = emotion2vec.build(config)
    labels = detector.frame_labels(torch.from_numpy(varied(4.0)), RATE, 25.0, 100)
    assert labels.shape == (100,) and int(labels.max()) < 8 and detector.fingerprint


def test_emotion2vec_head_for_another_backbone_size_is_refused(tiny_e2v, tmp_path):
    wide = write_tiny_emotion2vec(tmp_path / "emotion2vec_wide", dim=48)  # "large" vs "base"
    head = save_head(tmp_path / "h.safetensors", MLPHead(32, 8), kind="emotion2vec_mlp", label_set="paper",
                     backbone={})
    with pytest.raises(MemoZooError, match=r"takes 32-d features, but the backbone .* gives 48-d"):
        emotion2vec.build(emotion2vec.Emotion2vecMLPConfig(backbone=str(wide), head=str(head), device="cpu"))
    nine = save_head(tmp_path / "nine.safetensors", MLPHead(32, 9), kind="emotion2vec_mlp",
                     label_set="emotion2vec", backbone={})
    with pytest.raises(MemoZooError, match=r"nine.safetensors: the head has 9 classes .* has 8"):
        emotion2vec.build(emotion2vec.Emotion2vecMLPConfig(backbone=str(tiny_e2v), head=str(nine), device="cpu"))
    assert emotion2vec.build(emotion2vec.Emotion2vecMLPConfig(
        backbone=str(tiny_e2v), head=str(nine), device="cpu", label_set="emotion2vec")).labels == EMOTION2VEC_LABELS


def test_emotion2vec_folder_problems_name_the_file(tiny_e2v, tmp_path, monkeypatch):
    monkeypatch.delenv("MEMO_ZOO_WEIGHTS_DIR", raising=False)
    with pytest.raises(MissingWeightsError, match="not found at"):
        emotion2vec.Emotion2vecBackbone(str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(MissingWeightsError, match="MEMO_ZOO_WEIGHTS_DIR is not set"):
        emotion2vec.Emotion2vecBackbone("emotion2vec_plus_base", device="cpu")
    broken = tmp_path / "no_model"
    broken.mkdir()
    (broken / "config.yaml").write_text((tiny_e2v / "config.yaml").read_text())
    with pytest.raises(MissingWeightsError, match="lacks model.pt"):
        emotion2vec.Emotion2vecBackbone(str(broken), device="cpu")
    mismatched = write_tiny_emotion2vec(tmp_path / "mismatched")
    (mismatched / "config.yaml").write_text((tiny_e2v / "config.yaml").read_text().replace("embed_dim: 32",
                                                                                       "embed_dim: 64"))
    with pytest.raises(MemoZooError, match=r"model.pt: does not fit the model its config.yaml describes"):
        emotion2vec.Emotion2vecBackbone(str(mismatched), device="cpu")
    (mismatched / "config.yaml").write_text("model: Paraformer\nmodel_conf: {}\n")
    with pytest.raises(MemoZooError, match="not an emotion2vec config"):
        emotion2vec.Emotion2vecBackbone(str(mismatched), device="cpu")
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(tiny_e2v.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a name in the weights folder loads like a path
        assert emotion2vec.Emotion2vecBackbone(tiny_e2v.name, device="cpu").feature_dim == 32
