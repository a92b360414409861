"""Speech for talking_world: real synthesised English with exact phoneme and word timings.

talking_world (issue 4) is the embedded synthetic dataset; this module is its audio side. Speech
comes from eSpeak NG (:mod:`.espeak`, offline, deterministic), spoken in one of several
:data:`VOICES` (male / female speakers) with emotion-dependent prosody (:data:`EMOTION_PROSODY`,
one entry per paper label, spec E4). Every phoneme comes with its exact start and end, which
:mod:`.visemes` turns into mouth motion, so the generated clips have lip-sync ground truth.

Output follows spec D3: mono, 16 kHz, float32 in [-1, 1]. Times are seconds from the start of
the utterance. espeak renders at 22050 Hz; event positions are exact at that rate, the audio is
then resampled once (polyphase, 320/441), which does not move anything in time.

- :func:`synthesize` renders one text with one emotion;
- :func:`synthesize_script` renders a list of (sentence, emotion) lines with pauses between them,
  for long clips (minutes) and emotion changes inside a clip;
- :func:`make_sentences` / :func:`make_script` draw varied English sentences from a small built-in
  vocabulary, deterministically from a ``numpy`` generator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from memo_zoo.emotion import PAPER_LABELS, label_index

from . import espeak
# The voices' light home (no numpy, no espeak: WorldConfig checks their names; issue 17.8); imported here
# so that old import paths still work.
from .voices import DEFAULT_VOICE, VOICES, Voice

SAMPLE_RATE = 16_000  # spec D3
PAUSE_SYMBOL = "_"  # espeak's own short-pause mnemonic; also used for silence we insert


@dataclass(frozen=True)
class Prosody:
    """Speaking style in espeak's units.

    ``pitch``: base pitch 0-100 (50 = the voice's normal; the scale spans one octave down to one
    octave up). ``pitch_range``: intonation range 0-100 (0 = monotone, 50 = normal, 100 = twice
    the normal excursion). ``rate``: words per minute (80-450). ``volume``: amplitude 0-200 (100 =
    normal, linear in sample amplitude). ``word_gap``: extra silence between words, in 10 ms.

    The voice *variant* (timbre, i.e. who is speaking) is not part of the prosody: it belongs to
    :class:`Voice`, so that an emotion change inside a clip never changes the speaker.
    """

    pitch: int = 50
    pitch_range: int = 50
    rate: int = 165
    volume: int = 100
    word_gap: int = 0
    description: str = ""

    def jittered(self, rng: np.random.Generator) -> "Prosody":
        """A nearby style (a few pitch steps, about 5 % rate and volume), for per-sentence variety
        that stays well inside the gaps between emotions."""
        return replace(self,
                       pitch=int(round(self.pitch + rng.uniform(-3, 3))),
                       pitch_range=int(round(self.pitch_range + rng.uniform(-5, 5))),
                       rate=int(round(self.rate * rng.uniform(0.95, 1.05))),
                       volume=int(round(self.volume * rng.uniform(0.95, 1.05))))


# One entry per paper emotion (spec E4). The settings follow the usual acoustic correlates of
# emotional speech: high arousal (angry, happy, surprised, fearful) = faster and/or louder and
# higher; low arousal (sad) = slow, low, quiet and flat. Every pair differs in at least two
# dimensions by a margin well above the seed jitter, so the label is recoverable from the audio.
EMOTION_PROSODY: dict[str, Prosody] = {
    "angry": Prosody(pitch=56, pitch_range=85, rate=195, volume=170, word_gap=0,
                     description="loud, fast, wide range, slightly raised pitch"),
    "disgusted": Prosody(pitch=38, pitch_range=40, rate=135, volume=110, word_gap=1,
                         description="low, slow and drawn out, narrowish range"),
    "fearful": Prosody(pitch=72, pitch_range=30, rate=205, volume=80, word_gap=0,
                       description="high, fast, narrow (tense) range, quiet"),
    "happy": Prosody(pitch=64, pitch_range=75, rate=180, volume=130, word_gap=0,
                     description="high, wide range, brisk, fairly loud"),
    "neutral": Prosody(pitch=50, pitch_range=50, rate=165, volume=100, word_gap=0,
                       description="the voice's defaults"),
    "sad": Prosody(pitch=32, pitch_range=15, rate=115, volume=60, word_gap=2,
                   description="low, very narrow (flat), slow with gaps, quiet"),
    "surprised": Prosody(pitch=78, pitch_range=95, rate=170, volume=145, word_gap=0,
                         description="highest pitch, widest range, loud"),
    "others": Prosody(pitch=44, pitch_range=60, rate=150, volume=95, word_gap=1,
                      description="unspecified affect: slightly low and measured, a bit slower"),
}
assert tuple(EMOTION_PROSODY) == PAPER_LABELS  # spec E4 order


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme (espeak mnemonic, stress marks included, e.g. ``"'a"``) and its span in s."""

    symbol: str
    start: float
    end: float


@dataclass
class Utterance:
    """Synthesised speech with its ground truth.

    ``phonemes`` tile the audio without gaps or overlap, from 0 to the end of espeak's output
    (which the 16 kHz ``duration`` exceeds by less than one sample): silence espeak leaves before
    the first phoneme and the pauses between script lines appear as :data:`PAUSE_SYMBOL` entries.
    Times are exact at espeak's 22050 Hz, with one adjustment: the silent closure before a stop
    is part of the stop (see ``_closures_to_next``). ``words``
    are espeak's word units: unstressed function words it speaks together with the next word
    ("on the") form one unit, with the text of both. ``emotion`` is the label covering most of the
    time; ``emotion_segments`` gives the exact (label, start, end) timeline, pauses included in the
    line before them.
    """

    samples: np.ndarray
    sample_rate: int
    text: str
    voice: str
    emotion: str
    phonemes: list[PhonemeEvent]
    words: list[tuple[str, float, float]]
    emotion_segments: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def emotion_track(self, fps: float, num_frames: int) -> np.ndarray:
        """Per video frame, the paper label index (spec E4) of the line being spoken at the
        frame's midpoint ``(i + 0.5) / fps``; frames past the end keep the last label."""
        times = (np.arange(num_frames) + 0.5) / fps
        ends = np.array([end for _, _, end in self.emotion_segments])
        which = np.minimum(np.searchsorted(ends, times, side="right"), len(ends) - 1)
        labels = np.array([label_index(label) for label, _, _ in self.emotion_segments])
        return labels[which].astype(np.int64)


def _is_pause(symbol: str) -> bool:
    return symbol.startswith("_")


_EDGE_PUNCTUATION = re.compile(r"^[^\w']+|[^\w']+$")


def _closures_to_next(phonemes: list[tuple[str, int, int]], samples: np.ndarray,
                      rate: int) -> list[tuple[str, int, int]]:
    """Give the silent closure before a consonant to that consonant.

    espeak reports a stop at its burst: the silent closure (40-50 ms of exact digital zeros before
    p, t, k, and before b after another stop) is counted in the *previous* phoneme's span. In
    standard phonetic segmentation, and for the mouth, the closure belongs to the stop (the lips
    are already shut for p/b during it), so a run of exact zeros of at least 2 ms that ends where
    a speech phoneme starts is moved from the preceding speech phoneme to it. The preceding
    phoneme keeps at least 1 ms; boundaries next to pauses are left alone.
    """
    min_run, keep = int(0.002 * rate), max(1, int(0.001 * rate))
    # after_loud[i] = 1 + index of the last non-zero sample before i: where a zero run ending
    # just before i begins.
    loud_index = np.where(samples != 0, np.arange(len(samples)), -1)
    after_loud = np.concatenate([[0], np.maximum.accumulate(loud_index) + 1]) \
        if len(samples) else np.zeros(1, np.int64)
    out = list(phonemes)
    for k in range(1, len(out)):
        prev_sym, prev_start, prev_end = out[k - 1]
        sym, start, end = out[k]
        if _is_pause(sym) or _is_pause(prev_sym) or prev_end != start:
            continue
        run_start = max(int(after_loud[start]), prev_start + keep)
        if start - run_start >= min_run:
            out[k - 1] = (prev_sym, prev_start, run_start)
            out[k] = (sym, run_start, end)
    return out


def _render_line(text: str, voice: Voice, emotion: str, seed: int | None):
    """One espeak call -> (int16 samples at the native rate, [(symbol, start, end)], [(word,
    start, end)]), positions in native samples, phonemes tiling [0, len(samples)]."""
    label_index(emotion)  # validates against spec E4
    prosody = EMOTION_PROSODY[emotion]
    if seed is not None:
        prosody = prosody.jittered(np.random.default_rng(seed))
    prosody = voice.apply(prosody)
    raw = espeak.synth(text, voice.espeak, rate=prosody.rate, volume=prosody.volume,
                       pitch=prosody.pitch, pitch_range=prosody.pitch_range,
                       word_gap=prosody.word_gap, seed=0 if seed is None else seed)
    total = len(raw.samples)
    starts = [(ev.symbol, min(max(ev.sample, 0), total))
              for ev in raw.events if ev.type == espeak.EVENT_PHONEME and ev.symbol]
    phonemes: list[tuple[str, int, int]] = []
    cursor = 0
    for i, (symbol, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else total
        if end <= start:  # zero-length (espeak emits some at clause boundaries): no time to show
            continue
        if start > cursor:
            phonemes.append((PAUSE_SYMBOL, cursor, start))
        phonemes.append((symbol, start, end))
        cursor = end
    if cursor < total:
        phonemes.append((PAUSE_SYMBOL, cursor, total))
    phonemes = _closures_to_next(phonemes, raw.samples, raw.sample_rate)

    word_events = [ev for ev in raw.events if ev.type == espeak.EVENT_WORD]
    words: list[tuple[str, int, int]] = []
    for i, ev in enumerate(word_events):
        nxt = word_events[i + 1] if i + 1 < len(word_events) else None
        stop_char = nxt.text_position - 1 if nxt is not None else len(text)
        stop_sample = nxt.sample if nxt is not None else total + 1
        # The span's text runs to the next word unit, so merged units keep all their words.
        span_text = text[ev.text_position - 1:stop_char]
        word = " ".join(w for w in (_EDGE_PUNCTUATION.sub("", w) for w in span_text.split()) if w)
        spoken = [(s, e) for sym, s, e in phonemes
                  if not _is_pause(sym) and ev.sample <= s < stop_sample]
        if word and spoken:
            words.append((word, spoken[0][0], spoken[-1][1]))
    return raw.samples, raw.sample_rate, phonemes, words


def _to_16k(samples: np.ndarray, native_rate: int) -> np.ndarray:
    x = samples.astype(np.float32) / 32768.0
    if native_rate != SAMPLE_RATE:
        g = np.gcd(SAMPLE_RATE, native_rate)
        # scipy.signal takes most of a second to import: here, when speech is synthesised, not when
        # the talking_world plugin registers (memo-zoo ls, validate, schema).
        from scipy.signal import resample_poly

        x = resample_poly(x, SAMPLE_RATE // g, native_rate // g).astype(np.float32)
    # The anti-aliasing filter can overshoot full-scale peaks by a hair.
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


def synthesize_script(lines: Sequence[tuple[str, str]], voice: str = DEFAULT_VOICE,
                      pause: float = 0.35, seed: int | None = None) -> Utterance:
    """Speak ``lines`` = [(text, emotion), ...] one after another, ``pause`` seconds apart.

    Each line is one espeak call with its own emotion's prosody, so emotion can change from line
    to line. With ``seed`` set, line ``i`` uses a small prosody jitter drawn from ``(seed, i)``;
    without it, the :data:`EMOTION_PROSODY` values are used exactly. Line ``k``'s events are line
    ``k`` alone shifted by the lengths of lines ``0..k-1`` plus ``k`` pauses (exact at 22050 Hz).
    """
    if not lines:
        raise ValueError("synthesize_script needs at least one (text, emotion) line")
    if voice not in VOICES:
        raise ValueError(f"unknown voice {voice!r}; known: {', '.join(VOICES)}")
    if pause < 0:
        raise ValueError(f"pause must be >= 0 seconds, got {pause}")
    speaker = VOICES[voice]
    chunks: list[np.ndarray] = []
    phonemes: list[tuple[str, int, int]] = []
    words: list[tuple[str, int, int]] = []
    segments: list[tuple[str, int, int]] = []
    offset, native_rate = 0, None
    for i, (text, emotion) in enumerate(lines):
        line_seed = (None if seed is None
                     else int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
        samples, native_rate, ph, wd = _render_line(text, speaker, emotion, line_seed)
        gap = int(round(pause * native_rate)) if i + 1 < len(lines) else 0
        chunks.append(samples)
        phonemes += [(s, a + offset, b + offset) for s, a, b in ph]
        words += [(w, a + offset, b + offset) for w, a, b in wd]
        if gap > 0:
            chunks.append(np.zeros(gap, np.int16))
            phonemes.append((PAUSE_SYMBOL, offset + len(samples), offset + len(samples) + gap))
        segments.append((emotion, offset, offset + len(samples) + gap))
        offset += len(samples) + gap

    audio = _to_16k(np.concatenate(chunks), native_rate)
    sec = 1.0 / native_rate
    # Dominant label: most speaking time, ties to the earliest line.
    totals: dict[str, int] = {}
    for label, a, b in segments:
        totals[label] = totals.get(label, 0) + (b - a)
    return Utterance(
        samples=audio, sample_rate=SAMPLE_RATE, text=" ".join(t for t, _ in lines), voice=voice,
        emotion=max(totals, key=totals.get),
        phonemes=[PhonemeEvent(s, a * sec, b * sec) for s, a, b in phonemes],
        words=[(w, a * sec, b * sec) for w, a, b in words],
        emotion_segments=[(label, a * sec, b * sec) for label, a, b in segments])


def synthesize(text: str, voice: str = DEFAULT_VOICE, emotion: str = "neutral",
               seed: int | None = None) -> Utterance:
    """Speak ``text`` (may hold several sentences) in ``voice`` with ``emotion``'s prosody
    (spec E4 label). Deterministic: equal arguments give identical samples."""
    return synthesize_script([(text, emotion)], voice=voice, pause=0.0, seed=seed)


# --- sentences -------------------------------------------------------------------------------
# A small vocabulary of our own, chosen to cover English mouth shapes: bilabials (map, bottle,
# pump), labiodentals (five, velvet), dentals (thin, those), rounded (blue, moon, shoe) and open
# vowels (car, park), so that every viseme class occurs in a few sentences.
_NAMES = ("Mary", "Bob", "Anna", "Peter", "Fiona", "Victor", "Thomas", "Olivia", "Ruth", "Ahmed",
          "Lena", "George")
_NOUNS = ("map", "boat", "window", "garden", "teacher", "bottle", "mountain", "violin", "kitchen",
          "letter", "puppy", "umbrella", "pumpkin", "bridge", "forest", "camera", "bicycle",
          "river", "moon", "shoe", "orange", "tower", "feather", "harbour", "piano", "candle",
          "jacket", "elephant", "cookie", "village", "museum", "thunderstorm")
_ADJECTIVES = ("big", "blue", "quiet", "heavy", "bright", "tiny", "old", "broken", "famous",
               "purple", "smooth", "windy", "thin", "warm", "empty", "shiny", "lovely", "muddy",
               "velvet", "golden", "strange", "open")
_VERBS = (("find", "found"), ("paint", "painted"), ("carry", "carried"), ("move", "moved"),
          ("fix", "fixed"), ("open", "opened"), ("watch", "watched"), ("bring", "brought"),
          ("push", "pushed"), ("visit", "visited"), ("leave", "left"), ("buy", "bought"),
          ("hide", "hid"), ("wash", "washed"), ("throw", "threw"), ("measure", "measured"))
_PLACES = ("by the river", "in the kitchen", "near the old bridge", "at the harbour",
           "behind the museum", "under the table", "on the top floor", "in the park",
           "beside the fountain", "across the valley")
_TIMES = ("this morning", "last summer", "on Monday", "before dinner", "after the storm",
          "every weekend", "at midnight", "yesterday", "in five minutes", "next year")
_FEELINGS = ("wonderful", "terrible", "amazing", "awful", "perfect", "unbelievable", "boring",
             "beautiful")
_MOODS = ("happy", "furious", "surprised", "upset", "delighted", "worried", "proud")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _sentence(rng: np.random.Generator) -> str:
    def pick(options):
        return options[int(rng.integers(len(options)))]

    name, other = pick(_NAMES), pick(_NAMES)
    noun, noun2, adj, adj2 = pick(_NOUNS), pick(_NOUNS), pick(_ADJECTIVES), pick(_ADJECTIVES)
    base, past = pick(_VERBS)
    templates = (
        lambda: f"The {adj} {noun} {past} {_a(noun2)} {pick(_PLACES)}.",
        lambda: f"{name} {past} {_a(adj + ' ' + noun)} {pick(_TIMES)}.",
        lambda: f"Did {name} {base} the {noun} {pick(_PLACES)}?",
        lambda: f"Why is the {noun} so {adj}?",
        lambda: f"{name} and {other} {past} the {adj} {noun} {pick(_TIMES)}.",
        lambda: f"I {past} {_a(adj + ' ' + noun)}, and it was {pick(_FEELINGS)}.",
        lambda: f"We will {base} the {noun} {pick(_TIMES)}.",
        lambda: f"What {_a(pick(_FEELINGS) + ' ' + noun)}!",
        lambda: f"Please {base} the {adj} {noun} before {name} comes back.",
        lambda: f"My {noun} is {pick(_PLACES)}, next to {_a(adj2 + ' ' + noun2)}.",
        lambda: f"Nobody knew why {name} {past} the {noun}.",
        lambda: f"If you {base} {_a(noun)}, {other} will be {pick(_MOODS)}.",
    )
    return pick(templates)()


def make_sentences(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` varied English sentences (statements, questions, exclamations) of about 4 to 12
    words, a pure function of ``rng``'s state. About 2.5 s of speech each at neutral rate."""
    return [_sentence(rng) for _ in range(count)]


def make_script(rng: np.random.Generator, count: int,
                emotions: Sequence[str] = PAPER_LABELS, max_run: int = 3) -> list[tuple[str, str]]:
    """``count`` (sentence, emotion) lines for :func:`synthesize_script`: emotions drawn from
    ``emotions`` (spec E4 labels) and held for runs of 1..``max_run`` sentences, so a clip shows
    both sustained emotions and changes."""
    for label in emotions:
        label_index(label)
    lines: list[tuple[str, str]] = []
    while len(lines) < count:
        emotion = emotions[int(rng.integers(len(emotions)))]
        run = int(rng.integers(1, max_run + 1))
        lines += [(s, emotion) for s in make_sentences(rng, min(run, count - len(lines)))]
    return lines
