"""talking_world speech (issue 4): espeak synthesis, phoneme timing ground truth, visemes, mouth.

Checks that the synthetic dataset's audio is what spec D3 asks for (mono 16 kHz), deterministic,
that its phoneme timings really describe the audio, that the eight paper emotions (spec E4) change
the prosody measurably, and that the viseme / mouth tracks behave (closures close, motion is
smooth). All speech is synthesised offline by the bundled eSpeak NG; the whole file runs in a few
seconds.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from memo_zoo.emotion import PAPER_LABELS, label_index
from memo_zoo_plugins.datasets.talking_world import espeak
from memo_zoo_plugins.datasets.talking_world.speech import (
    EMOTION_PROSODY, PAUSE_SYMBOL, SAMPLE_RATE, VOICES, PhonemeEvent, make_script, make_sentences,
    synthesize, synthesize_script)
from memo_zoo_plugins.datasets.talking_world.visemes import (
    BILABIAL, PHONEME_TO_VISEMES, SILENCE, VISEME_NAMES, VISEMES, energy_track, mouth_track,
    visemes_of)

SENTENCE = "Peter bought a lovely blue umbrella at the harbour this morning."
MAP = "The map is on the big table."


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def f0_median(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Median pitch of the loud frames, by normalised autocorrelation (60-500 Hz)."""
    n = int(0.04 * sr)
    frames = [x[i:i + n] for i in range(0, len(x) - n, n // 2)]
    loud = max(rms(f) for f in frames)
    pitches = []
    for f in frames:
        if rms(f) < 0.3 * loud:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[n - 1:]
        ac = ac / ac[0]
        lo, hi = sr // 500, sr // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3:
            pitches.append(sr / lag)
    return float(np.median(pitches))


@pytest.fixture(scope="module")
def neutral():
    return synthesize(SENTENCE, "male_us", "neutral")


@pytest.fixture(scope="module")
def by_emotion():
    return {e: synthesize(SENTENCE, "female_us", e) for e in ("angry", "happy", "sad", "surprised")}


# --- synthesis (spec D3) ---------------------------------------------------------------------

def test_output_is_mono_16k_float32_in_range_and_not_silent(neutral):
    assert neutral.sample_rate == SAMPLE_RATE == 16_000
    assert neutral.samples.dtype == np.float32 and neutral.samples.ndim == 1
    assert np.abs(neutral.samples).max() <= 1.0
    assert rms(neutral.samples) > 0.03
    assert 1.5 < neutral.duration < 6.0
    assert espeak.sample_rate() == 22050  # the native rate the timings are exact at


def test_synthesis_is_deterministic_whatever_ran_before(neutral):
    # espeak keeps hidden global state (flutter index, AGC); an unrelated call in between, on
    # another voice (a breathy one, using libc rand), must not change the result.
    synthesize("Something else entirely, with a breath.", "female_us_breathy", "angry", seed=3)
    again = synthesize(SENTENCE, "male_us", "neutral")
    assert np.array_equal(again.samples, neutral.samples)
    assert again.phonemes == neutral.phonemes and again.words == neutral.words
    a = synthesize(SENTENCE, "female_us_breathy", "happy", seed=7)
    b = synthesize(SENTENCE, "female_us_breathy", "happy", seed=7)
    c = synthesize(SENTENCE, "female_us_breathy", "happy", seed=8)
    assert np.array_equal(a.samples, b.samples)
    assert not (len(a.samples) == len(c.samples) and np.array_equal(a.samples, c.samples))


def test_concurrent_threads_get_the_sequential_result(neutral):
    results = [None] * 4

    def work(i):
        results[i] = synthesize(SENTENCE, "male_us", "neutral")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r.samples, neutral.samples) for r in results)


def test_unknown_voice_or_emotion_is_rejected():
    with pytest.raises(ValueError, match="voice"):
        synthesize("Hello.", voice="robot")
    with pytest.raises(ValueError, match="emotion"):
        synthesize("Hello.", emotion="bored")


# --- phoneme / word timing -------------------------------------------------------------------

def test_phonemes_tile_the_audio_in_order(neutral):
    ph = neutral.phonemes
    assert ph[0].start == 0.0
    assert all(p.end > p.start for p in ph)
    assert all(a.end == pytest.approx(b.start, abs=1e-12) for a, b in zip(ph, ph[1:]))
    # 16 kHz resampling rounds the length up by less than one output sample
    assert abs(ph[-1].end - neutral.duration) < 1.0 / SAMPLE_RATE
    assert sum(not p.symbol.startswith("_") for p in ph) >= 30


def test_phoneme_spans_cover_the_speech():
    # Silence around the sentence: spoken phonemes hold the energy, pauses hold (almost) none.
    utt = synthesize_script([("Well.", "neutral"), (SENTENCE, "neutral"), ("Well.", "neutral")],
                            voice="male_us", pause=0.6)
    sr, x = utt.sample_rate, utt.samples

    def span_rms(spans):
        idx = np.concatenate([np.arange(int(a * sr), int(b * sr)) for a, b in spans])
        return rms(x[idx])

    speech = [(p.start, p.end) for p in utt.phonemes if not p.symbol.startswith("_")]
    pauses = [(p.start, p.end) for p in utt.phonemes if p.symbol == PAUSE_SYMBOL
              and p.end - p.start > 0.3]
    assert len(pauses) == 2  # the two inserted 0.6 s pauses
    assert span_rms(speech) > 100 * max(span_rms(pauses), 1e-6)


def test_words_are_ordered_and_inside_their_phonemes():
    utt = synthesize(MAP, "female_us", "neutral")
    words = [w for w, _, _ in utt.words]
    assert "map" in words and "table" in words
    spans = [(a, b) for _, a, b in utt.words]
    assert all(a < b for a, b in spans)
    assert all(b1 <= a2 + 1e-12 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    starts = {p.start for p in utt.phonemes}
    assert all(a in starts for a, _ in spans)


def test_script_timings_are_the_lines_shifted_by_length_plus_pause():
    lines = [("What a lovely puppy!", "happy"), ("Nobody knew why Ruth left the map.", "sad")]
    first = synthesize(lines[0][0], "male_uk", "happy")
    second = synthesize(lines[1][0], "male_uk", "sad")
    pause = 0.4
    utt = synthesize_script(lines, voice="male_uk", pause=pause)
    native = 1.0 / espeak.sample_rate()
    shift = first.phonemes[-1].end + round(pause / native) * native  # exact at 22050 Hz
    tail = [p for p in utt.phonemes if p.start >= shift - 1e-9]
    assert [p.symbol for p in tail] == [p.symbol for p in second.phonemes]
    for got, alone in zip(tail, second.phonemes):
        assert got.start == pytest.approx(alone.start + shift, abs=1e-9)
        assert got.end == pytest.approx(alone.end + shift, abs=1e-9)
    assert utt.duration == pytest.approx(first.duration + pause + second.duration, abs=2e-4)
    assert [s[0] for s in utt.emotion_segments] == ["happy", "sad"]
    assert utt.emotion == "sad"  # the longer line (slow, sad)
    track = utt.emotion_track(fps=30, num_frames=int(utt.duration * 30))
    assert track[0] == label_index("happy") and track[-1] == label_index("sad")
    assert np.all(np.diff(track[track != track[0]]) == 0)  # one change only


def test_long_script_from_generated_sentences_is_consistent():
    lines = make_script(np.random.default_rng(5), 16)
    utt = synthesize_script(lines, voice="female_uk", pause=0.3, seed=11)
    assert utt.duration > 30.0
    assert len({e for _, e in lines}) > 2
    ph = utt.phonemes
    assert all(a.end == pytest.approx(b.start, abs=1e-12) for a, b in zip(ph, ph[1:]))
    assert abs(ph[-1].end - utt.duration) < 1.0 / SAMPLE_RATE
    assert np.array_equal(synthesize_script(lines, voice="female_uk", pause=0.3, seed=11).samples,
                          utt.samples)


# --- prosody: emotions (spec E4) and voices --------------------------------------------------

def test_every_paper_emotion_has_its_own_prosody():
    assert tuple(EMOTION_PROSODY) == PAPER_LABELS
    settings = {(p.pitch, p.pitch_range, p.rate, p.volume) for p in EMOTION_PROSODY.values()}
    assert len(settings) == 8
    assert all(p.description for p in EMOTION_PROSODY.values())


def test_emotions_change_loudness_rate_and_pitch(by_emotion):
    angry, happy, sad, surprised = (by_emotion[e] for e in ("angry", "happy", "sad", "surprised"))
    assert rms(angry.samples) > 2.0 * rms(sad.samples)  # loud vs quiet
    assert sad.duration > 1.5 * angry.duration  # same sentence: slow vs fast
    assert f0_median(surprised.samples) > 1.5 * f0_median(sad.samples)  # high vs low
    assert f0_median(happy.samples) > 1.3 * f0_median(sad.samples)


def test_voices_differ(neutral):
    female = synthesize(SENTENCE, "female_us", "neutral")
    assert f0_median(female.samples) > 1.4 * f0_median(neutral.samples)
    assert {v.gender for v in VOICES.values()} == {"male", "female"}
    a = synthesize(MAP, "male_us", "neutral").samples
    b = synthesize(MAP, "male_us_deep", "neutral").samples
    assert len(a) != len(b) or not np.array_equal(a, b)


# --- sentences -------------------------------------------------------------------------------

def test_sentences_are_deterministic_and_varied():
    a = make_sentences(np.random.default_rng(0), 40)
    assert a == make_sentences(np.random.default_rng(0), 40)
    assert a != make_sentences(np.random.default_rng(1), 40)
    assert len(set(a)) > 35
    assert all(s[0].isupper() and s[-1] in ".?!" and 3 <= len(s.split()) <= 16 for s in a)
    assert {s[-1] for s in a} == {".", "?", "!"}


# --- visemes and mouth -----------------------------------------------------------------------

def test_every_phoneme_espeak_emits_has_a_table_entry():
    text = " ".join(make_sentences(np.random.default_rng(2), 60))
    text += " Judge the church ship measure vision thin this. Choice mouth face goat near cure."
    for voice in ("en-us", "en"):
        raw = espeak.synth(text, voice, rate=175, volume=100, pitch=50, pitch_range=50)
        symbols = {e.symbol.lstrip("',") for e in raw.events if e.type == espeak.EVENT_PHONEME}
        unknown = {s for s in symbols if not s.startswith("_") and s not in PHONEME_TO_VISEMES}
        assert not unknown, f"{voice}: no viseme entry for {sorted(unknown)}"


def test_viseme_lookup_rules():
    assert len(VISEMES) == len(VISEME_NAMES) == 13
    assert visemes_of("p") == visemes_of("b") == visemes_of("m") == (BILABIAL,)
    assert VISEME_NAMES[visemes_of("f")[0]] == "FF"
    assert [VISEME_NAMES[v] for v in visemes_of("'aI")] == ["AA", "IH"]  # stress mark dropped
    assert visemes_of("_:") == visemes_of("_") == (SILENCE,)
    # fallbacks: a variant suffix is dropped, unknown vowels -> EH, unknown consonants -> DD
    assert visemes_of("f2") == visemes_of("f")
    assert VISEME_NAMES[visemes_of("y")[0]] == "DD"
    assert VISEME_NAMES[visemes_of("'Y7")[0]] == "DD"
    assert VISEME_NAMES[visemes_of("o")[0]] == "EH"
    for v in VISEMES:
        assert 0 <= v.opening <= 1 and 0 <= v.width <= 1 and 0 <= v.roundness <= 1


def test_mouth_track_shapes_and_ranges(neutral):
    n = int(neutral.duration * 30) + 10  # 10 frames past the audio
    track = mouth_track(neutral.phonemes, fps=30, num_frames=n)
    assert len(track) == n
    for arr in (track.opening, track.width, track.roundness):
        assert arr.shape == (n,) and arr.dtype == np.float32
        assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert track.viseme.dtype == np.int64 and 0 <= track.viseme.min()
    assert track.viseme.max() < len(VISEMES)
    assert np.all(track.viseme[-5:] == SILENCE)
    assert track.opening.max() > 0.6  # some open vowels
    assert len(mouth_track(neutral.phonemes, fps=30, num_frames=0)) == 0


def test_bilabial_closes_the_mouth_and_the_vowel_opens_it():
    utt = synthesize(MAP, "female_us", "neutral")
    fps = 100
    track = mouth_track(utt.phonemes, fps=fps, num_frames=int(utt.duration * fps))
    times = (np.arange(len(track)) + 0.5) / fps
    word = next((a, b) for w, a, b in utt.words if w == "map")
    in_map = [p for p in utt.phonemes if word[0] <= p.start < word[1]]
    assert [p.symbol.lstrip("'") for p in in_map] == ["m", "a", "p"]
    for p in in_map:
        inside = (times >= p.start) & (times < p.end)
        if visemes_of(p.symbol) == (BILABIAL,):
            assert np.all(track.viseme[inside] == BILABIAL)
            assert track.opening[inside].min() < 0.06  # reaches closure
            assert track.opening[inside].max() < 0.15
        else:
            assert track.opening[inside].max() > 0.6  # "a" opens wide between m and p


def test_coarticulation_is_smooth_and_anticipates():
    phonemes = [PhonemeEvent("_", 0.0, 0.2), PhonemeEvent("'a", 0.2, 0.4),
                PhonemeEvent("p", 0.4, 0.48), PhonemeEvent("u:", 0.48, 0.7),
                PhonemeEvent("_", 0.7, 1.0)]
    fps = 200
    smooth = mouth_track(phonemes, fps=fps, num_frames=200)
    raw = mouth_track(phonemes, fps=fps, num_frames=200, smoothing=0.0)
    # the raw targets jump (a -> p -> u: is open -> shut -> rounded) ...
    assert np.abs(np.diff(raw.opening)).max() > 0.8
    assert np.abs(np.diff(raw.roundness)).max() > 0.75
    # ... the co-articulated mouth moves at most 0.15 per 5 ms frame
    for name in ("opening", "width", "roundness"):
        assert np.abs(np.diff(getattr(smooth, name))).max() < 0.15
    times = (np.arange(200) + 0.5) / fps
    # rounding for "u:" starts before it (during p), and carries over into the pause after it
    assert smooth.roundness[(times > 0.44) & (times < 0.48)].max() > 0.3
    assert smooth.roundness[(times > 0.7) & (times < 0.74)].min() > 0.3
    # the mouth is already opening before "a" starts
    assert smooth.opening[(times > 0.17) & (times < 0.2)].max() > 0.15


def test_energy_track_matches_rms_per_frame():
    sr, fps = 16_000, 25
    t = np.arange(sr) / sr
    x = np.where(t < 0.5, 0.5 * np.sin(2 * np.pi * 220 * t), 0.0).astype(np.float32)
    e = energy_track(x, sr, fps, 30)  # 5 frames past the 1 s of audio
    assert e.shape == (30,) and e.dtype == np.float32
    # 40 ms windows hold a non-integer number of 220 Hz periods: within 1.5 % of A / sqrt(2)
    assert np.allclose(e[:12], 0.5 / np.sqrt(2), rtol=0.015)
    assert np.all(e[13:] == 0)


def test_energy_and_mouth_agree_on_real_speech(neutral):
    fps = 30
    n = int(neutral.duration * fps)
    energy = energy_track(neutral.samples, neutral.sample_rate, fps, n)
    opening = mouth_track(neutral.phonemes, fps, n).opening
    assert np.corrcoef(energy, opening)[0, 1] > 0.3
