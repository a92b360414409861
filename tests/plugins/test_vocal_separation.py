"""MDX-Net vocal separation (released code's optional step before wav2vec2, §10): the STFT / chunking
round trip through tiny ONNX "mask" models written here with ``onnx.helper`` (Kim_Vocal_2.onnx's
input/output layout, (batch, 4, dim_f, dim_t) -> the same), the release's gains and peaks, where
the model is looked up and the errors that name it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.perception.vocals import VocalSeparator, separate_vocals
from memo_zoo.perception.configs import VocalSeparatorConfig

pytestmark = pytest.mark.usefixtures("one_thread")

# A small MDX geometry: 129 bins of which the net sees 128, 32 frames per chunk of 64 x 31 samples.
N_FFT, HOP, DIM_F, DIM_T = 256, 64, 128, 32
RATE = 16000


def write_mask_model(path, gain: float = 1.0, dim_f=DIM_F, dim_t=DIM_T, sign_sensitive: bool = False):
    """(batch, 4, dim_f, dim_t) -> gain x input (``sign_sensitive``: gain x relu(input), which
    separates the denoise average from a plain run)."""
    nodes = [helper.make_node("Mul", ["input", "gain"], ["scaled"])]
    if sign_sensitive:
        nodes.append(helper.make_node("Relu", ["scaled"], ["output"]))
    else:
        nodes.append(helper.make_node("Identity", ["scaled"], ["output"]))
    shape = ["batch", 4, dim_f, dim_t]
    graph = helper.make_graph(nodes, "mask", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)],
                              [numpy_helper.from_array(np.array(gain, np.float32), "gain")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def config(path, **options) -> VocalSeparatorConfig:
    values = dict(weights=str(path), n_fft=N_FFT, hop_length=HOP, sample_rate=RATE, compensate=1.0,
                  amplification_threshold=0.0, device="cpu")
    values.update(options)
    return VocalSeparatorConfig(**values)


def tones(seconds: float, rate: int, freqs=(440.0, 1234.0, 3000.0), amplitude=0.2) -> np.ndarray:
    """In-band tones (above the 3 zeroed bins, below dim_f) with a 20 ms fade in and out."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate(freqs)) * amplitude / len(freqs)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (wave * fade).astype(np.float32)


@pytest.fixture
def identity(tmp_path):
    return write_mask_model(tmp_path / "identity.onnx")


def test_identity_mask_round_trip_returns_the_input(identity):
    separator = VocalSeparator(config(identity))
    assert (separator.dim_f, separator.dim_t, separator.chunk, separator.trim) == (DIM_F, DIM_T, HOP * 31, N_FFT // 2)
    audio = tones(1.3, RATE)  # ~11 overlapping chunks
    out = separator.separate(audio, RATE)
    assert out.shape == audio.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, audio, atol=2e-4)


@pytest.mark.parametrize("overlap", [0.5, 0.75])
def test_round_trip_holds_for_other_overlaps(identity, overlap):
    audio = tones(0.7, RATE, freqs=(700.0, 2100.0))
    out = VocalSeparator(config(identity, overlap=overlap)).separate(audio, RATE)
    np.testing.assert_allclose(out, audio, atol=2e-4)


def test_mask_gain_and_compensation_scale_the_stem(tmp_path):
    half = write_mask_model(tmp_path / "half.onnx", gain=0.5)
    audio = tones(0.6, RATE)
    out = VocalSeparator(config(half, compensate=1.009)).separate(audio, RATE)
    np.testing.assert_allclose(out, audio * 0.5 * 1.009, atol=2e-4)


def test_peaks_are_normalised_to_the_threshold(identity):
    loud = tones(0.6, RATE, amplitude=2.4)  # peak above 1
    out = VocalSeparator(config(identity)).separate(loud, RATE)
    peak = np.abs(loud).max()
    np.testing.assert_allclose(out, loud * (0.9 / peak), atol=1.5e-3)
    assert np.abs(out).max() == pytest.approx(0.9, abs=2e-3)


def test_quiet_audio_is_amplified_to_the_amplification_threshold(identity):
    quiet = tones(0.6, RATE, amplitude=0.3)
    out = VocalSeparator(config(identity, amplification_threshold=0.6)).separate(quiet, RATE)
    np.testing.assert_allclose(out, quiet * (0.6 / np.abs(quiet).max()), atol=1e-3)


def test_the_release_rate_round_trip_through_44k(identity):
    # 16 kHz in, the net at 44.1 kHz, 16 kHz out with the input's length
    audio = tones(0.5, RATE, freqs=(900.0, 2500.0))
    separator = VocalSeparator(config(identity, sample_rate=44100))
    out = separator.separate(audio, RATE)
    assert out.shape == audio.shape
    np.testing.assert_allclose(out[400:-400], audio[400:-400], atol=2e-3)


def test_lowest_bins_are_zeroed_before_the_net(identity):
    # a 40 Hz tone sits in bin 0-1 of a 256-point FFT at 16 kHz (62.5 Hz bins): removed
    t = np.arange(RATE) / RATE
    hum = (0.3 * np.sin(2 * np.pi * 40 * t)).astype(np.float32)
    out = VocalSeparator(config(identity)).separate(hum, RATE)
    assert np.abs(out[2000:-2000]).max() < 0.03 * 0.3


def test_denoise_averages_the_net_on_both_signs(tmp_path):
    relu = write_mask_model(tmp_path / "relu.onnx", sign_sensitive=True)
    audio = tones(0.5, RATE)
    plain = VocalSeparator(config(relu)).separate(audio, RATE)
    denoised = VocalSeparator(config(relu, denoise=True)).separate(audio, RATE)
    # relu(x)/2 - relu(-x)/2 = x/2: the denoise average of a relu mask is half the input
    np.testing.assert_allclose(denoised, audio * 0.5, atol=2e-4)
    assert np.abs(plain - audio * 0.5).max() > 1e-2


def test_separate_vocals_runs_without_autograd(identity):
    audio = tones(0.4, RATE)
    with torch.enable_grad():
        out = separate_vocals(audio, RATE, config(identity))
    np.testing.assert_allclose(out, audio, atol=2e-4)


def test_model_found_in_a_release_folder_and_by_name(tmp_path, monkeypatch):
    folder = tmp_path / "release" / "misc" / "vocal_separator"
    folder.mkdir(parents=True)
    write_mask_model(folder / "Kim_Vocal_2.onnx")
    assert VocalSeparator(config(tmp_path / "release")).path == folder / "Kim_Vocal_2.onnx"
    assert VocalSeparator(config(folder)).path == folder / "Kim_Vocal_2.onnx"  # the folder holding it
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(folder))
    assert VocalSeparator(config("Kim_Vocal_2.onnx")).path == folder / "Kim_Vocal_2.onnx"


def test_missing_model_names_the_file_and_the_option(tmp_path):
    with pytest.raises(MissingWeightsError) as error:
        VocalSeparator(config(tmp_path / "Kim_Vocal_2.onnx"))
    assert "Kim_Vocal_2.onnx" in str(error.value) and "vocal_separator.weights" in str(error.value)
    with pytest.raises(MissingWeightsError, match="without Kim_Vocal_2.onnx.*vocal_separator.weights"):
        VocalSeparator(config(tmp_path))


def test_model_geometry_is_checked(tmp_path):
    model = write_mask_model(tmp_path / "m.onnx")
    with pytest.raises(MemoZooError, match="dim_t is 16, but .* takes 32"):
        VocalSeparator(config(model, dim_t=16))
    with pytest.raises(MemoZooError, match="128 frequency bins, more than the 65 of n_fft 128"):
        VocalSeparator(config(model, n_fft=128, hop_length=64))
    dynamic = write_mask_model(tmp_path / "dyn.onnx", dim_f="bins", dim_t="frames")
    with pytest.raises(MemoZooError, match="set vocal_separator.dim_f"):
        VocalSeparator(config(dynamic))
    assert VocalSeparator(config(dynamic, dim_f=DIM_F, dim_t=DIM_T)).chunk == HOP * (DIM_T - 1)
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(MemoZooError, match="bad.onnx cannot be opened by ONNX Runtime"):
        VocalSeparator(config(tmp_path / "bad.onnx"))


def test_config_checks_its_geometry():
    with pytest.raises(ValueError, match="exceeds"):
        VocalSeparatorConfig(weights="x", n_fft=256, dim_f=200)
    with pytest.raises(ValueError, match="longer than n_fft"):
        VocalSeparatorConfig(weights="x", n_fft=7680, hop_length=16, dim_t=256)
    with pytest.raises(ValueError, match="amplification_threshold 0.95 is above"):
        VocalSeparatorConfig(weights="x", amplification_threshold=0.95)
    release = VocalSeparatorConfig(weights="memoavatar/memo")
    assert (release.n_fft, release.hop_length, release.compensate, release.overlap, release.sample_rate,
            release.normalization_threshold, release.amplification_threshold) == (7680, 1024, 1.009, 0.25, 44100,
                                                                                   0.9, 0.6)


# ---------------------------------------------------------------------------------- the preprocess stage


def test_stage_replaces_the_clip_audio_with_its_vocals(tmp_path, identity):
    from scipy.io import wavfile

    from memo_zoo.data.clip import ClipRecord
    from memo_zoo.data.media import read_audio
    from memo_zoo_plugins.preprocess.vocal_separation import build

    audio = tones(0.8, RATE)
    source = tmp_path / "speech.wav"
    wavfile.write(source, RATE, audio)
    clip = ClipRecord(clip_id="spk/001", video=tmp_path / "clip.mp4", audio=source, speaker="spk", emotion="happy")
    out_dir = tmp_path / "stage"
    out_dir.mkdir()
    stage = build(config(identity))
    assert stage.name == "vocal_separation"
    result = stage.process(clip, out_dir)
    assert result.kept and len(result.clips) == 1
    kept = result.clips[0]
    assert kept.audio.parent == out_dir and kept.audio.name.endswith(".vocals.wav")
    assert (kept.video, kept.speaker, kept.emotion, kept.clip_id) == (clip.video, "spk", "happy", "spk/001")
    assert "dBFS" in result.reason and result.value == pytest.approx(0.0, abs=0.05)  # identity mask: same level
    np.testing.assert_allclose(read_audio(kept.audio, RATE), audio, atol=5e-4)  # 16-bit PCM


def test_stage_drops_a_clip_without_audio(tmp_path, identity):
    from memo_zoo.data.clip import ClipRecord
    from memo_zoo.data.media import write_video
    from memo_zoo_plugins.preprocess.vocal_separation import build

    video = write_video(tmp_path / "silent.mp4", np.zeros((4, 16, 16, 3), np.uint8), 25.0)
    result = build(config(identity)).process(ClipRecord(clip_id="a", video=video), tmp_path)
    assert not result.kept and "no audio" in result.reason


def test_stereo_input_is_separated_as_stereo_then_averaged(tmp_path):
    # a mask that keeps the left channel's spectrogram only (channels 0-1 of the 4)
    keep_left = np.zeros((1, 4, DIM_F, DIM_T), np.float32)
    keep_left[:, :2] = 1
    path = tmp_path / "left.onnx"
    graph = helper.make_graph([helper.make_node("Mul", ["input", "mask"], ["output"])], "left",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 4, DIM_F, DIM_T])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["b", 4, DIM_F, DIM_T])],
                              [numpy_helper.from_array(keep_left, "mask")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    left, right = tones(0.6, RATE, freqs=(500.0,)), tones(0.6, RATE, freqs=(2000.0,))
    out = VocalSeparator(config(path)).separate(np.stack([left, right]), RATE)
    np.testing.assert_allclose(out, left / 2, atol=2e-4)  # right channel silenced, then the mono average
    with pytest.raises(ValueError, match="mono \\(n,\\) or stereo \\(2, n\\)"):
        VocalSeparator(config(path)).separate(np.zeros((3, 100), np.float32), RATE)
