"""``preprocess: {kind: vocal_separation}``: a clip's audio replaced by its separated vocals (§10).

The release's data preparation (``scripts/prepare_data.py``) extracts a clip's audio features
from its vocals, separated by the MDX-Net ``Kim_Vocal_2.onnx``, so that music and noise do not
drive the lips; this stage does the same for memo-zoo's pipeline with the core's separator
(``memo_zoo.perception.vocals``; options: ``VocalSeparatorConfig``, the release's defaults).

The clip's 16 kHz mono audio (spec D3) is separated and written as ``<out_dir>/<clip>.vocals.wav``
(16-bit PCM, as audio-separator writes its stems), and the clip goes on with that file as its
audio: later stages (the lip-sync filter) and the published clip hear the vocals. The frames are
untouched. A clip with no audio at all is dropped, since there is nothing to drive it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from memo_zoo.atomic import write_atomically
from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.media import AUDIO_RATE
from memo_zoo.data.pipeline import StageResult, clip_stem, read_clip_audio
from memo_zoo.perception.vocals import VocalSeparator
from memo_zoo.perception.configs import VocalSeparatorConfig

__all__ = ["VocalSeparation", "VocalSeparatorConfig", "build"]


def level_db(wave: np.ndarray) -> float:
    """RMS level in dBFS (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def write_wav(path: Path, wave: np.ndarray, rate: int) -> Path:
    """Mono float ``wave`` in [-1, 1] as a 16-bit PCM WAV, written atomically."""
    from scipy.io import wavfile

    pcm = np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)
    return write_atomically(path, lambda temp: wavfile.write(temp, rate, pcm))


class VocalSeparation:
    name = "vocal_separation"

    def __init__(self, config: VocalSeparatorConfig):
        self.separator = VocalSeparator(config)  # the ONNX session is opened once, for every clip

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult:
        audio = read_clip_audio(clip)
        if audio is None:
            return StageResult.drop("no audio track: no vocals to separate")
        vocals = self.separator.separate(audio, AUDIO_RATE)
        path = write_wav(Path(out_dir) / f"{clip_stem(clip.clip_id)}.vocals.wav", vocals, AUDIO_RATE)
        before, after = level_db(audio), level_db(vocals)
        return StageResult.keep(dataclasses.replace(clip, audio=path),
                                reason=f"vocals {after:.1f} dBFS of a {before:.1f} dBFS mix",
                                value=after - before if np.isfinite(after - before) else None)


def build(config: VocalSeparatorConfig) -> VocalSeparation:
    return VocalSeparation(config)
