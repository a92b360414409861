"""The synthetic speakers' voices: espeak voice + personal prosody offsets (``speech`` speaks with them).

Pure Python, no numpy or espeak, so that ``WorldConfig`` (``configs``) can check voice names
without loading the speech synthesiser (issue 17.8); ``speech`` imports these from here, so
``speech.VOICES``, ... still work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .speech import Prosody


@dataclass(frozen=True)
class Voice:
    """A speaker: espeak language + variant (timbre) and small personal offsets to the prosody."""

    name: str
    espeak: str  # espeak voice name, "language+variant"
    gender: str  # "male" | "female"
    pitch_offset: int = 0  # added to Prosody.pitch
    rate_scale: float = 1.0  # multiplies Prosody.rate

    def apply(self, prosody: Prosody) -> Prosody:
        return replace(prosody, pitch=prosody.pitch + self.pitch_offset,
                       rate=int(round(prosody.rate * self.rate_scale)))


VOICES: dict[str, Voice] = {v.name: v for v in (
    Voice("male_us", "en-us", "male"),
    Voice("male_us_low", "en-us+m1", "male", pitch_offset=-4, rate_scale=0.96),
    Voice("male_uk", "en+m3", "male", pitch_offset=2, rate_scale=1.04),
    Voice("male_us_deep", "en-us+m4", "male", pitch_offset=-2, rate_scale=0.98),
    Voice("female_us", "en-us+f1", "female"),
    Voice("female_us_breathy", "en-us+f3", "female", pitch_offset=2, rate_scale=1.03),
    Voice("female_uk", "en+f4", "female", pitch_offset=-2, rate_scale=0.97),
    Voice("female_uk_soft", "en+f2", "female", pitch_offset=4, rate_scale=1.0),
)}
DEFAULT_VOICE = "female_us"
