"""Classifier-free guidance as a weighted sum of conditioning levels (spec I2, §10).

``guidance_levels`` turns a ``GuidanceConfig`` into the branches the network evaluates in one
batched forward and the weight of each in the guided velocity. The unconditional level has a
zero face embedding, zero audio tokens, the "no emotion" index and reference attention off;
``memo_zoo.generate.sampling`` builds each level's inputs.

Outside ``GuidanceConfig.interval`` the velocity is the conditional level's alone
(``conditional_levels``): one pass instead of all the guided levels.
"""

from __future__ import annotations

from dataclasses import dataclass

from memo_zoo.generate.config import GuidanceConfig


@dataclass(frozen=True)
class Level:
    """Which conditions one guidance branch keeps (spec §10's unconditional branch drops all)."""

    reference: bool
    audio: bool
    emotion: bool


def guidance_levels(cfg: GuidanceConfig, has_audio: bool = True) -> list[tuple[Level, float]]:
    """The branches to evaluate and the weight of each in the guided velocity (``GuidanceConfig``).

    ``v = sum_l w_l v_l`` with the weights of the telescoped chain u -> r -> ra -> c; levels that
    coincide (no audio encoder: r = ra) are merged and zero weights dropped. The weights sum to 1.
    """
    s_ref, s_audio, s_emotion = cfg.scales()
    chain = [(Level(False, False, False), 1.0 - s_ref), (Level(True, False, False), s_ref - s_audio),
             (Level(True, True, False), s_audio - s_emotion), (Level(True, True, True), s_emotion)]
    merged: dict[Level, float] = {}
    for level, weight in chain:
        if not has_audio:
            level = Level(level.reference, False, level.emotion)
        merged[level] = merged.get(level, 0.0) + weight
    return [(level, weight) for level, weight in merged.items() if weight != 0.0]


def conditional_levels(has_audio: bool = True) -> list[tuple[Level, float]]:
    """The one branch evaluated outside the guidance interval: every condition, weight 1 (I2's v_c)."""
    return [(Level(True, has_audio, True), 1.0)]


def levels_at(cfg: GuidanceConfig, t: float, has_audio: bool = True) -> list[tuple[Level, float]]:
    """The branches evaluated at flow time ``t``: ``guidance_levels`` inside ``cfg.interval`` (or with
    no interval), the conditional level alone outside it."""
    return guidance_levels(cfg, has_audio) if cfg.guided_at(t) else conditional_levels(has_audio)
