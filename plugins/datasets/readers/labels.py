"""Emotion label tables of the dataset readers (spec E4, D2): pure Python, no media code.

Its own module so that configs (``MeadConfig``'s emotion list) and the emotion corpora's file
naming (``memo_zoo_plugins.emotion.labels``) use the tables without importing PyAV or torch
(issue 17.8); ``common`` imports them from here, so ``common.MEAD_EMOTIONS``, ... still work.
"""

from __future__ import annotations

import re

from memo_zoo.emotion import PAPER_LABELS

# --- emotion labels (spec E4: the paper's 8 classes; D2: "unclear -> others") ------------------

# Spellings that datasets and annotation tools use for the paper's classes. Contempt is not a
# paper class; it defaults to ``others`` (see ``contempt_table``).
_SYNONYMS: dict[str, str] = {
    "angry": "angry", "anger": "angry", "annoyed": "angry",
    "disgusted": "disgusted", "disgust": "disgusted",
    "fearful": "fearful", "fear": "fearful", "afraid": "fearful", "scared": "fearful",
    "happy": "happy", "happiness": "happy", "joy": "happy", "pleasure": "happy",
    "neutral": "neutral", "calm": "neutral",
    "sad": "sad", "sadness": "sad",
    "surprised": "surprised", "surprise": "surprised",
    "others": "others", "other": "others", "contempt": "others",
}

# MEAD's folder names (spec §11) -> paper classes. MEAD's ``contempt`` has no paper class: the
# released classifier (emotion2vec's classes) has none either and D2 sends unclear labels to
# ``others``; ``contempt_as: disgusted`` merges it with the nearest basic emotion instead.
MEAD_EMOTIONS: dict[str, str] = {
    "angry": "angry", "contempt": "others", "disgusted": "disgusted", "fear": "fearful",
    "happy": "happy", "neutral": "neutral", "sad": "sad", "surprised": "surprised",
}

# CelebV-HQ's eight emotion labels (neutral, happy, sadness, anger, fear, surprise, contempt,
# disgust) and the variants seen in re-exports (capitalised, adjective forms), via _SYNONYMS.
CELEBV_HQ_EMOTIONS: dict[str, str] = {
    "neutral": "neutral", "happy": "happy", "sadness": "sad", "anger": "angry", "fear": "fearful",
    "surprise": "surprised", "contempt": "others", "disgust": "disgusted",
}

LABEL_TABLES: dict[str, dict[str, str]] = {
    "mead": MEAD_EMOTIONS,
    "celebv_hq": CELEBV_HQ_EMOTIONS,
    "generic": _SYNONYMS,
}


def normalise_label(raw: str) -> str:
    """``" Happy-Face "`` -> ``"happy_face"``: case, spaces and hyphens never matter in a label."""
    return re.sub(r"[\s\-]+", "_", raw.strip().lower())


def contempt_table(table: dict[str, str], contempt_as: str) -> dict[str, str]:
    """``table`` with ``contempt`` sent to ``contempt_as`` (``others`` or ``disgusted``)."""
    if contempt_as not in PAPER_LABELS:
        raise ValueError(f"contempt_as must be one of the paper's classes, got {contempt_as!r}")
    return {**table, "contempt": contempt_as}


def map_emotion(raw: str | None, table: dict[str, str]) -> str | None:
    """A dataset's label -> one of the paper's 8 classes (spec E4).

    The dataset's own table first, then the common spellings; a label neither knows is
    ``others`` (spec D2: unclear -> others), not dropped, so the clip still trains. No label
    (None or blank) stays None: the clip is unlabelled, not "others".
    """
    if raw is None or not str(raw).strip():
        return None
    key = normalise_label(str(raw))
    return table.get(key) or _SYNONYMS.get(key) or "others"
