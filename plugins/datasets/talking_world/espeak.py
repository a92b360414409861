"""Minimal ctypes binding to libespeak-ng (from the ``espeakng-loader`` wheel) for talking_world.

talking_world (issue 4) needs real speech with exact phoneme timings, offline. eSpeak NG gives
both: in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode ``espeak_Synth`` runs the whole synthesis before it
returns, handing 16-bit PCM blocks and event lists (word / phoneme / end, each with its sample
position) to a callback. This module binds only what :mod:`.speech` uses and returns one
:class:`RawSpeech` per call at espeak's native rate (22050 Hz); resampling to spec D3's 16 kHz is
the caller's job.

Global state and determinism
----------------------------
eSpeak NG keeps process-global state, and not all of it is API-visible: besides voice, parameters
and callback, its waveform generator has function-static counters (the pitch-flutter table index,
the roughness-modulation cycle counter, the anti-clipping gain) that carry over from one utterance
to the next and survive ``espeak_Terminate`` / ``espeak_Initialize``. Two calls with identical
arguments therefore give different samples (and even different lengths) on a reused instance.
To make every call a pure function of its arguments this module:

- copies the shared library once, lazily, to a private file in the memo-zoo cache, so that no
  other user of libespeak-ng in the process (a phonemizer, say) shares or disturbs its state;
- for every call ``dlopen``s that private copy, initialises it (about 4 ms, the phoneme tables are
  small), synthesises, terminates and ``dlclose``s it, so each call starts from freshly loaded
  statics, i.e. exactly as the first call in a new process would;
- seeds espeak's own noise generator and libc's ``rand`` (used for breathy voices) per call
  (so libc's process-wide ``rand`` sequence is reseeded as a side effect);
- serialises all of this under one module lock (:data:`LOCK`): the library, the callback and the
  collected buffers are global, so concurrent threads simply wait for each other.

espeak_Terminate does not free everything espeak_Initialize allocated: each call leaves about
2 kB behind (about 2 GB per million calls), so very long generation runs should recycle worker
processes now and then.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# espeak_AUDIO_OUTPUT: synchronous retrieval (no sound device; the callback gets everything).
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options: bit 0 enables espeakEVENT_PHONEME (mnemonics, not IPA: bit 1 off);
# bit 15 returns an error instead of calling exit() if the data is missing.
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
# espeak_Synth flags: UTF-8 text, and ``[[...]]`` accepted as phoneme input (Kirshenbaum-like).
CHARS_UTF8 = 1
PHONEMES = 0x100
POS_CHARACTER = 1

# espeak_EVENT_TYPE
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_MARK = 3
EVENT_PLAY = 4
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
EVENT_SAMPLERATE = 8

# espeak_PARAMETER (only the ones set here; punctuation/capitals stay at their defaults, and this
# build rejects setting them in synchronous mode anyway)
RATE = 1
VOLUME = 2
PITCH = 3
RANGE = 4
WORDGAP = 7
INTONATION = 9

RATE_MIN, RATE_MAX = 80, 450
EE_OK = 0


class _EventId(ctypes.Union):
    # union id { int number; const char *name; char string[8]; } -- 8 bytes on 64-bit.
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class EspeakEvent(ctypes.Structure):
    """``espeak_EVENT``: six 4-byte ints, an 8-byte-aligned pointer, the 8-byte union (40 B)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position in the input text
        ("length", ctypes.c_int),  # word length in characters (WORD events)
        ("audio_position", ctypes.c_int),  # ms from the start of this synthesis
        ("sample", ctypes.c_int),  # the same instant in samples (exact; the ms value is rounded)
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(EspeakEvent))


@dataclass(frozen=True)
class Event:
    """One event copied out of espeak's buffer (which is reused after the callback returns)."""

    type: int
    sample: int  # sample index at the native rate, from the start of this call's audio
    audio_position_ms: int
    text_position: int
    length: int
    symbol: str  # phoneme mnemonic for PHONEME events, "" otherwise
    number: int  # word / sentence number for WORD / SENTENCE events, 0 otherwise


@dataclass(frozen=True)
class RawSpeech:
    samples: np.ndarray  # int16, mono, at ``sample_rate``
    sample_rate: int
    events: tuple[Event, ...]


LOCK = threading.RLock()
# path / original: the library file loaded per call and the wheel's own; home: the data folder's
# parent; libc: for srand; sample_rate: once known.
_private: dict = {}
_collect: dict = {"chunks": [], "events": []}


def _on_synth(wav, numsamples, events) -> int:
    # Copy everything now: espeak reuses both buffers for the next block.
    if wav and numsamples > 0:
        _collect["chunks"].append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
    if events:
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            symbol, number = "", 0
            if ev.type == EVENT_PHONEME:
                # Up to 8 bytes, zero-terminated only when shorter than 8.
                symbol = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
            elif ev.type in (EVENT_WORD, EVENT_SENTENCE):
                number = ev.id.number
            _collect["events"].append(Event(ev.type, ev.sample, ev.audio_position, ev.text_position,
                                            ev.length, symbol, number))
            i += 1
    return 0  # 0 = continue synthesis


# Kept alive for the whole process: espeak stores only the raw function pointer.
_CALLBACK_REF = _CALLBACK(_on_synth)


def _private_library_path() -> str:
    """Path of a private copy of libespeak-ng, made once per machine (caller holds :data:`LOCK`).

    A distinct path makes ``dlopen`` map a separate instance, which ``dlclose`` then really unloads
    (nothing else holds it), so the next ``dlopen`` starts from pristine statics. The copy lives in
    the memo-zoo cache (``MEMO_ZOO_CACHE_DIR``), named by the library's content hash, and is
    written atomically; processes (forked workers included) share the file, each maps its own
    instance. If the cache is not writable, the wheel's own file is used: still freshly loaded per
    call, just not isolated from other code in the process that might load it too.
    """
    if "path" not in _private:
        import espeakng_loader

        from memo_zoo.settings import get_settings

        original = espeakng_loader.get_library_path()
        blob = Path(original).read_bytes()
        digest = hashlib.sha256(blob).hexdigest()[:16]
        path = get_settings().cache_dir / "espeak" / f"libespeak-ng-talking-world-{digest}.so"
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
                partial.write_bytes(blob)
                os.replace(partial, path)  # atomic: concurrent processes never see half a file
            chosen = str(path)
        except OSError:
            chosen = original
        libc_name = ctypes.util.find_library("c")
        _private.update(
            path=chosen, original=original,
            # espeak_Initialize wants the directory that *contains* espeak-ng-data.
            home=str(Path(espeakng_loader.get_data_path()).parent).encode(),
            libc=ctypes.CDLL(libc_name) if libc_name else None)
    return _private["path"]


def _open():
    """dlopen + espeak_Initialize a fresh instance of the private copy (caller holds the lock)."""
    try:
        lib = ctypes.CDLL(_private_library_path(), mode=os.RTLD_LOCAL)
    except OSError:
        # A cache on a noexec mount cannot hold loadable code: fall back to the wheel's own
        # file (still freshly loaded per call, unless someone else keeps it open).
        _private["path"] = _private["original"]
        lib = ctypes.CDLL(_private["path"], mode=os.RTLD_LOCAL)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = ctypes.c_int

    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, _private["home"],
                                 INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT)
    if rate <= 0:
        _close(lib, terminate=False)
        raise RuntimeError(f"espeak_Initialize failed (returned {rate}); data in "
                           f"{_private['home'].decode()}")
    _private["sample_rate"] = rate
    lib.espeak_SetSynthCallback(_CALLBACK_REF)
    return lib


def _close(lib, terminate: bool = True) -> None:
    import _ctypes

    if terminate:
        lib.espeak_Terminate()
    # POSIX dlclose; Windows' equivalent is FreeLibrary.
    unload = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary")
    unload(lib._handle)


def sample_rate() -> int:
    """espeak's native output rate (22050 Hz for the bundled voices)."""
    with LOCK:
        if "sample_rate" not in _private:
            _close(_open())
        return _private["sample_rate"]


def synth(text: str, voice: str, *, rate: int, volume: int, pitch: int, pitch_range: int,
          word_gap: int = 0, seed: int = 0) -> RawSpeech:
    """Synthesise ``text`` with espeak voice ``voice`` (e.g. ``"en-us+f3"``); a pure function.

    ``rate`` in words per minute (80-450), ``volume`` 0-200 (100 = normal), ``pitch`` and
    ``pitch_range`` 0-100 (50 = the voice's normal), ``word_gap`` extra pause between words in
    units of 10 ms. ``seed`` seeds espeak's noise generators (breathy voices), so equal arguments
    give bit-identical samples. Event ``sample`` positions count from the start of the returned
    samples; the last event is the END of the final clause, at ``len(samples)``.
    """
    with LOCK:
        lib = _open()
        try:
            if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise ValueError(f"espeak has no voice {voice!r}")
            for parameter, value in ((RATE, int(np.clip(rate, RATE_MIN, RATE_MAX))),
                                     (VOLUME, int(np.clip(volume, 0, 200))),
                                     (PITCH, int(np.clip(pitch, 0, 100))),
                                     (RANGE, int(np.clip(pitch_range, 0, 100))),
                                     (WORDGAP, max(0, int(word_gap))), (INTONATION, 0)):
                if lib.espeak_SetParameter(parameter, value, 0) != EE_OK:
                    raise RuntimeError(f"espeak_SetParameter({parameter}, {value}) failed")
            lib.espeak_ng_SetRandSeed(int(seed))
            if _private["libc"] is not None:
                # Breath noise (the f2/f3/f5 variants) calls libc rand(), not espeak's generator.
                _private["libc"].srand(ctypes.c_uint(int(seed) & 0xFFFFFFFF))
            _collect["chunks"], _collect["events"] = [], []
            data = text.encode("utf-8") + b"\0"
            status = lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8 | PHONEMES,
                                      None, None)
            if status != EE_OK:
                raise RuntimeError(f"espeak_Synth failed with status {status}")
            lib.espeak_Synchronize()
            chunks, events = _collect["chunks"], _collect["events"]
        finally:
            _collect["chunks"], _collect["events"] = [], []
            _close(lib)
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return RawSpeech(samples.astype(np.int16, copy=False), _private["sample_rate"],
                         tuple(events))
