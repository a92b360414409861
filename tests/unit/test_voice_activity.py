"""Silero voice activity (issue 20, ``memo_zoo/perception/voice_activity.py``) on real speech, and
generation's warning on audio without speech (``memo_zoo/generate/inputs.py``).

The speech is eSpeak NG's, synthesised offline by talking_world (``synthesize``), padded with 1.0 s
of silence before and 0.7 s after. Its true span is the synthesised sentence with espeak's own
leading and trailing silence cut off by energy: from the first to the last 10 ms frame whose RMS
reaches 1% (-40 dB) of the loudest frame's. The model is the ONNX file shipped in the silero-vad
wheel; nothing is downloaded.
"""

from __future__ import annotations

import math
import sys
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.generate import inputs
from memo_zoo.generate.warning import GenerationWarning
from memo_zoo.perception import voice_activity
from memo_zoo.perception.voice_activity import (WINDOW, VoiceActivityConfig, VoiceActivityDetector, detect_speech,
                                                packaged_model)
from memo_zoo_plugins.datasets.talking_world.speech import synthesize

RATE = 16_000
BEFORE, AFTER = 1.0, 0.7
SENTENCE = "Mary found a blue map by the river this morning."
TOLERANCE = 0.1  # seconds: onset and offset within 100 ms of the truth


def energy_bounds(samples: np.ndarray, frame: int = 160, floor: float = 0.01) -> tuple[float, float]:
    """Seconds from the first 10 ms frame to the end of the last one whose RMS is at least ``floor``
    times the loudest frame's (espeak's leading / trailing silence is exactly zero or near it)."""
    count = len(samples) // frame
    rms = np.sqrt(np.mean(np.square(samples[:count * frame].reshape(count, frame), dtype=np.float64), axis=1))
    loud = np.nonzero(rms >= floor * rms.max())[0]
    return loud[0] * frame / RATE, (loud[-1] + 1) * frame / RATE


def padded(speech: np.ndarray, before: float = BEFORE, after: float = AFTER) -> np.ndarray:
    return np.concatenate([np.zeros(int(round(before * RATE)), np.float32), speech,
                           np.zeros(int(round(after * RATE)), np.float32)])


@pytest.fixture(scope="module")
def sentences() -> dict[str, np.ndarray]:
    """The sentence in talking_world's default voice (female_us) and in male_us."""
    return {voice: synthesize(SENTENCE, voice=voice).samples for voice in ("female_us", "male_us")}


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


# ---- the detector --------------------------------------------------------------------------------


@pytest.mark.parametrize("voice", ["female_us", "male_us"])
def test_onset_and_offset_of_padded_speech_are_within_100_ms(sentences, voice):
    speech = sentences[voice]
    start, end = energy_bounds(speech)
    assert start < 0.05 and end > 2.0  # the truth is the sentence, not espeak's edges
    activity = detect_speech(padded(speech))
    span = activity.span
    assert span is not None
    onset, offset = span.start - (BEFORE + start), span.end - (BEFORE + end)
    assert abs(onset) <= TOLERANCE, f"onset off by {onset * 1000:.0f} ms"
    assert abs(offset) <= TOLERANCE, f"offset off by {offset * 1000:.0f} ms"
    assert activity.duration == pytest.approx(BEFORE + len(speech) / RATE + AFTER)
    # The padding is silence: the sentence is most of the speech, the pads none of it.
    assert activity.speech_seconds == pytest.approx(end - start, abs=0.25)


def test_one_probability_per_512_sample_window_and_repeatable(sentences):
    audio = padded(sentences["female_us"])
    detector = VoiceActivityDetector()
    first = detector.detect(audio)
    assert first.probabilities.shape == (math.ceil(len(audio) / WINDOW),)
    assert first.probabilities.dtype == np.float32
    assert first.probabilities[:int(BEFORE * RATE) // WINDOW - 2].max() < 0.1  # leading silence
    assert first.probabilities.max() > 0.9
    detector.detect(np.random.default_rng(0).standard_normal(RATE).astype(np.float32))  # another track between
    again = detector.detect(audio)
    np.testing.assert_array_equal(again.probabilities, first.probabilities)  # the recurrent state was reset
    assert again.segments == first.segments


@pytest.mark.parametrize("level", [0.0, 0.003, 0.01])
def test_silence_and_low_white_noise_have_no_speech(level):
    audio = (np.random.default_rng(1).standard_normal(3 * RATE) * level).astype(np.float32)
    activity = detect_speech(audio)
    assert activity.segments == () and activity.span is None
    assert activity.speech_fraction == 0.0


def test_empty_audio_has_no_speech_and_bad_input_is_named():
    assert detect_speech(np.zeros(0, np.float32)).segments == ()
    with pytest.raises(ValueError, match="16000 Hz.*sample_rate=44100"):
        detect_speech(np.zeros(RATE, np.float32), sample_rate=44_100)
    with pytest.raises(ValueError, match=r"mono audio.*\(2, 16000\)"):
        detect_speech(np.zeros((2, RATE), np.float32))


def test_torchscript_backend_agrees_with_onnx(sentences):
    audio = padded(sentences["female_us"])[: 2 * RATE]
    onnx = detect_speech(audio)
    jit = detect_speech(audio, VoiceActivityConfig(backend="jit"))
    np.testing.assert_allclose(jit.probabilities, onnx.probabilities, atol=1e-4)
    assert jit.segments == onnx.segments


def test_the_model_is_loaded_once_and_an_explicit_file_works():
    assert voice_activity.load_model()[0] is voice_activity.load_model()[0]
    path = packaged_model("onnx")
    assert path.name == "silero_vad.onnx" and path.is_file()
    assert VoiceActivityDetector(VoiceActivityConfig(model=str(path))).model is voice_activity.load_model()[0]


def test_a_missing_model_file_names_the_file(tmp_path):
    missing = tmp_path / "vad.onnx"
    with pytest.raises(MissingWeightsError, match=str(missing)):
        VoiceActivityDetector(VoiceActivityConfig(model=str(missing)))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(MemoZooError, match=f"Silero VAD model.*{broken}.*cannot be loaded"):
        VoiceActivityDetector(VoiceActivityConfig(model=str(broken)))


def test_config_checks_the_model_suffix_and_the_thresholds():
    with pytest.raises(ValidationError, match="does not match backend 'jit'"):
        VoiceActivityConfig(backend="jit", model="vad.onnx")
    with pytest.raises(ValidationError, match="does not match backend 'onnx'"):
        VoiceActivityConfig(model="silero_vad.jit")
    with pytest.raises(ValidationError, match=r"neg_threshold \(0.6\) is above threshold \(0.5\)"):
        VoiceActivityConfig(neg_threshold=0.6)
    with pytest.raises(ValidationError):
        VoiceActivityConfig(no_such_option=1)


def test_importing_silero_leaves_the_torch_thread_count_alone(monkeypatch):
    # silero_vad.model calls torch.set_num_threads(1) at import; import it afresh to see it put back.
    for name in [n for n in sys.modules if n == "silero_vad" or n.startswith("silero_vad.")]:
        monkeypatch.delitem(sys.modules, name)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        voice_activity._silero()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_without_the_package_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "silero_vad", None)  # "import silero_vad" raises ImportError
    with pytest.raises(MemoZooError, match="silero-vad package"):
        VoiceActivityDetector()


# ---- generation's warning ------------------------------------------------------------------------


def test_generation_warns_on_audio_without_speech(tmp_path):
    hiss = (np.random.default_rng(2).standard_normal(2 * RATE) * 0.003).astype(np.float32)  # -50 dBFS: not silent
    message = inputs.speech_warning(hiss)
    assert message is not None and message.startswith("no speech found in 2.00 s")
    path = write_wav(tmp_path / "hiss.wav", hiss)
    with pytest.warns(GenerationWarning, match=f"{path.name}: no speech found"):
        audio = inputs.load_audio(path)
    assert audio.size == 2 * RATE
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenerationWarning)
        inputs.load_audio(path, check_speech=False)


def test_generation_is_quiet_on_speech_and_warns_on_a_little_speech_in_a_long_track(sentences, tmp_path):
    speech = sentences["female_us"]
    assert inputs.speech_warning(padded(speech)) is None
    path = write_wav(tmp_path / "speech.wav", padded(speech))
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenerationWarning)
        inputs.load_audio(path)
    mostly_silence = padded(speech, before=1.0, after=15.0)
    message = inputs.speech_warning(mostly_silence)
    assert message is not None and message.startswith("speech in only") and "< 20%" in message


def test_generation_warns_and_goes_on_when_the_detector_cannot_run(sentences, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    message = inputs.speech_warning(padded(sentences["female_us"]))
    assert message.startswith("voice activity check unavailable (MemoZooError") and "silero-vad" in message
    path = write_wav(tmp_path / "speech.wav", padded(sentences["female_us"]))
    with pytest.warns(GenerationWarning, match="voice activity check unavailable"):
        assert inputs.load_audio(path).size > 0
