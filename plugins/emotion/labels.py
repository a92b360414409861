"""Emotion corpora named by their files: label parsers and the declarative merge into the paper's 8 classes.

Spec D2: the detector trains on several corpora, "datasets' own labels mapped into the 8 classes
(e.g. pleasure -> happy; unclear -> others)". Each corpus below has a table from its own label
codes to the paper's classes (spec E4), and a parser from a file path to ``(speaker, label)``.
Merging choices that are not a mere spelling:

- ``calm`` (RAVDESS) -> neutral: a low-arousal, valence-neutral delivery, closer to neutral than
  to any other class;
- ``pleasant surprise`` (TESS ``ps``) -> surprised (the class); its positive valence is dropped;
- ``pleasure`` -> happy (spec D2's example);
- ``contempt`` (MEAD, CelebV-HQ), ``boredom`` (EmoDB), ``pain`` and other labels without a paper
  class -> others (spec D2: unclear -> others). Contempt is sometimes merged with disgust; it is not
  here, for the same reason as the dataset readers' default (``datasets.readers.common``): the
  released classifier has no such class either, and a mixed "disgusted" class would teach the
  detector two expressions under one label.

File naming per corpus (what each parser reads):

==========  ============================================  ==========================================
corpus      file                                          speaker, label
==========  ============================================  ==========================================
ravdess     ``03-01-05-01-02-01-12.wav`` (7 fields)        field 7 (actor), field 3 (emotion code);
                                                          field 1 = 02 (video only) is skipped
crema_d     ``1001_DFA_ANG_XX.wav``                        field 1, field 3
tess        ``OAF_back_angry.wav`` (+ ``OAF_angry/``)       field 1 (OAF / YAF), last field(s)
savee       ``DC_a01.wav`` or ``DC/a01.wav``                prefix or folder, letters before digits
emodb       ``03a01Fa.wav``                                characters 1-2, character 6
mead        ``M003/audio/angry/level_1/001.m4a``           actor folder, emotion folder
folder      ``<root>/<label>/.../<file>``                  none; the nearest folder named a label
==========  ============================================  ==========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from memo_zoo.emotion import PAPER_LABELS
# The readers' pure-Python label tables, not their media code: the train_emotion config imports this
# module for CORPORA, and configs stay torch- and PyAV-free (issue 17.8).
from memo_zoo_plugins.datasets.readers.labels import MEAD_EMOTIONS, normalise_label

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".aac", ".mp4", ".mkv", ".webm", ".avi", ".mov")

# --- the declarative tables: corpus label -> paper class (spec E4, D2) ----------------------------

RAVDESS: dict[str, str] = {
    "01": "neutral", "02": "neutral",  # calm -> neutral
    "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "07": "disgusted", "08": "surprised"}
RAVDESS_NAMES = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
                 "07": "disgust", "08": "surprised"}
CREMA_D: dict[str, str] = {
    "ANG": "angry", "DIS": "disgusted", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
TESS: dict[str, str] = {
    "angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy", "neutral": "neutral",
    "sad": "sad", "ps": "surprised", "pleasant_surprise": "surprised", "pleasant_surprised": "surprised"}
SAVEE: dict[str, str] = {
    "a": "angry", "d": "disgusted", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprised"}
EMODB: dict[str, str] = {
    "W": "angry",      # Wut / Aerger (anger)
    "L": "others",     # Langeweile (boredom): no paper class
    "E": "disgusted",  # Ekel (disgust)
    "A": "fearful",    # Angst (fear)
    "F": "happy",      # Freude (happiness)
    "T": "sad",        # Trauer (sadness)
    "N": "neutral"}
MEAD: dict[str, str] = dict(MEAD_EMOTIONS)  # one table with the MEAD reader: contempt -> others
# Folder names of the generic reader (and the spellings the tables above normalise to).
GENERIC: dict[str, str] = {
    **{label: label for label in PAPER_LABELS},
    "anger": "angry", "mad": "angry", "annoyed": "angry",
    "disgust": "disgusted",
    "fear": "fearful", "afraid": "fearful", "scared": "fearful",
    "happiness": "happy", "joy": "happy", "pleasure": "happy", "amused": "happy",
    "calm": "neutral",
    "sadness": "sad",
    "surprise": "surprised", "ps": "surprised", "pleasant_surprise": "surprised", "pleasant_surprised": "surprised",
    "other": "others", "contempt": "others", "boredom": "others", "bored": "others", "pain": "others"}

TABLES: dict[str, dict[str, str]] = {
    "ravdess": RAVDESS, "crema_d": CREMA_D, "tess": TESS, "savee": SAVEE, "emodb": EMODB, "mead": MEAD,
    "folder": GENERIC}
assert all(set(table.values()) <= set(PAPER_LABELS) for table in TABLES.values())


@dataclass(frozen=True)
class LabelledFile:
    """One labelled audio file of a corpus. ``label`` is a paper class (spec E4)."""

    path: Path
    corpus: str
    speaker: str | None
    source_label: str
    label: str


class NotThisCorpus(ValueError):
    """A file whose name does not follow the corpus's naming; the message says what was expected."""


# --- parsers: path -> (speaker, source label code) ------------------------------------------------

_RAVDESS = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_CREMA_D = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_SAVEE = re.compile(r"^(?:([A-Z]{2})_)?([a-z]{1,2})(\d{2})$")
_EMODB = re.compile(r"^(\d{2})([a-z]\d{2})([A-Z])([a-z])$")


def parse_ravdess(path: Path) -> tuple[str, str]:
    match = _RAVDESS.match(path.stem)
    if not match:
        raise NotThisCorpus("expected 7 two-digit fields like 03-01-05-01-02-01-12")
    modality, emotion, actor = match.group(1), match.group(3), match.group(7)
    if modality == "02":
        raise NotThisCorpus("modality 02 is video-only (no audio)")
    if emotion not in RAVDESS:
        raise NotThisCorpus(f"emotion code {emotion} is not one of RAVDESS's 01-08")
    return f"Actor_{actor}", emotion


def parse_crema_d(path: Path) -> tuple[str, str]:
    match = _CREMA_D.match(path.stem)
    if not match:
        raise NotThisCorpus("expected <actor>_<sentence>_<emotion>_<level> like 1001_DFA_ANG_XX")
    if match.group(3) not in CREMA_D:
        raise NotThisCorpus(f"emotion {match.group(3)} is not one of {', '.join(CREMA_D)}")
    return match.group(1), match.group(3)


def parse_tess(path: Path) -> tuple[str, str]:
    parts = path.stem.split("_")
    if len(parts) < 3 or parts[0].upper() not in ("OAF", "YAF"):
        raise NotThisCorpus("expected <OAF|YAF>_<word>_<emotion> like OAF_back_angry")
    # "pleasant_surprise" spans two fields in some releases; the emotion is whatever follows the word.
    emotion = normalise_label("_".join(parts[2:]))
    if emotion not in TESS:
        raise NotThisCorpus(f"emotion {emotion!r} is not one of {', '.join(TESS)}")
    return parts[0].upper(), emotion


def parse_savee(path: Path) -> tuple[str, str]:
    match = _SAVEE.match(path.stem)
    if not match:
        raise NotThisCorpus("expected [<speaker>_]<code><NN> like DC_a01 or DC/a01")
    speaker = match.group(1) or path.parent.name
    if match.group(2) not in SAVEE:
        raise NotThisCorpus(f"emotion code {match.group(2)!r} is not one of {', '.join(SAVEE)}")
    return speaker, match.group(2)


def parse_emodb(path: Path) -> tuple[str, str]:
    match = _EMODB.match(path.stem)
    if not match:
        raise NotThisCorpus("expected <speaker NN><text a01><emotion letter><version> like 03a01Fa")
    if match.group(3) not in EMODB:
        raise NotThisCorpus(f"emotion letter {match.group(3)!r} is not one of {', '.join(EMODB)}")
    return match.group(1), match.group(3)


def parse_mead(path: Path) -> tuple[str, str]:
    # <actor>/audio/<emotion>/level_<n>/<NNN>.m4a (spec §11); video paths have a <view> folder more.
    parts = path.parts
    if "audio" in parts[:-1]:
        at = len(parts) - 1 - parts[::-1].index("audio")
        if at >= 1 and at + 2 < len(parts) - 1 and re.fullmatch(r"level_\d", parts[at + 2]):
            emotion = normalise_label(parts[at + 1])
            if emotion in MEAD:
                return parts[at - 1], emotion
            raise NotThisCorpus(f"emotion folder {parts[at + 1]!r} is not one of MEAD's {', '.join(MEAD)}")
    raise NotThisCorpus("expected <actor>/audio/<emotion>/level_<n>/<NNN>.m4a")


def parse_folder(path: Path) -> tuple[None, str]:
    # The nearest enclosing folder whose name is a known label; speakers are not known.
    for folder in reversed(path.parts[:-1]):
        label = normalise_label(folder)
        if label in GENERIC:
            return None, label
    raise NotThisCorpus(f"no enclosing folder is named like an emotion ({', '.join(sorted(GENERIC))})")


PARSERS: dict[str, Callable[[Path], tuple[str | None, str]]] = {
    "ravdess": parse_ravdess, "crema_d": parse_crema_d, "tess": parse_tess, "savee": parse_savee,
    "emodb": parse_emodb, "mead": parse_mead, "folder": parse_folder}
CORPORA = tuple(PARSERS)


def label_file(corpus: str, path: str | Path) -> LabelledFile:
    """The labelled file of ``path`` under ``corpus``'s naming (``NotThisCorpus`` if it does not follow it)."""
    if corpus not in PARSERS:
        raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")
    path = Path(path)
    speaker, code = PARSERS[corpus](path)
    source = RAVDESS_NAMES[code] if corpus == "ravdess" else code
    return LabelledFile(path, corpus, speaker, source, TABLES[corpus][code])


def scan_corpus(corpus: str, root: str | Path,
                suffixes: Iterable[str] = AUDIO_SUFFIXES) -> tuple[list[LabelledFile], list[tuple[Path, str]]]:
    """Every audio file under ``root`` (recursively, sorted) labelled by ``corpus``'s naming.

    Returns ``(files, skipped)``; ``skipped`` lists ``(path, reason)`` for audio files whose name
    does not follow the naming, so nothing is dropped silently. For MEAD only the ``audio`` tree is
    read (its videos carry the same recordings).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{corpus} corpus root {root} is not a folder")
    wanted = {s.lower() for s in suffixes}
    files, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted):
        relative = path.relative_to(root)
        if corpus == "mead" and "video" in relative.parts[:-1]:
            continue
        try:
            # Parsed relative to the root, so folder names above it never count as labels.
            files.append(replace(label_file(corpus, relative), path=path))
        except NotThisCorpus as reason:
            skipped.append((path, str(reason)))
    return files, skipped


def merge_table() -> list[tuple[str, str, str]]:
    """``(corpus, source label, paper class)`` rows of every table (documentation and the report)."""
    rows = []
    for corpus, table in TABLES.items():
        for code, label in table.items():
            rows.append((corpus, RAVDESS_NAMES.get(code, code) if corpus == "ravdess" else code, label))
    return rows
