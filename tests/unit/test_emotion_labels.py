"""Corpus label parsers and the declarative merge into the paper's 8 classes (spec D2, E4; issue 6).

Each corpus is checked on file names in its own published naming, and ``scan_corpus`` on a small
tree per corpus (empty files: the parsers read names only) that mixes in files it must skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memo_zoo.emotion import PAPER_LABELS
from memo_zoo_plugins.datasets.readers.common import MEAD_EMOTIONS
from memo_zoo_plugins.emotion.labels import (
    CORPORA, TABLES, NotThisCorpus, label_file, merge_table, scan_corpus)


@pytest.mark.parametrize("corpus, name, speaker, source, label", [
    ("ravdess", "03-01-05-01-02-01-12.wav", "Actor_12", "angry", "angry"),
    ("ravdess", "03-01-02-02-01-02-01.wav", "Actor_01", "calm", "neutral"),
    ("ravdess", "01-01-08-01-01-01-24.mp4", "Actor_24", "surprised", "surprised"),  # audio-video file
    ("ravdess", "03-02-07-01-01-01-03.wav", "Actor_03", "disgust", "disgusted"),  # song channel
    ("crema_d", "1001_DFA_ANG_XX.wav", "1001", "ANG", "angry"),
    ("crema_d", "1091_IEO_FEA_HI.wav", "1091", "FEA", "fearful"),
    ("crema_d", "1012_TIE_NEU_XX.wav", "1012", "NEU", "neutral"),
    ("tess", "OAF_back_angry.wav", "OAF", "angry", "angry"),
    ("tess", "YAF_dog_ps.wav", "YAF", "ps", "surprised"),
    ("tess", "OAF_Pleasant_surprise/OAF_bath_pleasant_surprise.wav", "OAF", "pleasant_surprise", "surprised"),
    ("tess", "YAF_fear/YAF_germ_fear.wav", "YAF", "fear", "fearful"),
    ("tess", "YAF_disgust/YAF_chat_disgust.wav", "YAF", "disgust", "disgusted"),
    ("savee", "DC_a01.wav", "DC", "a", "angry"),
    ("savee", "JK_sa15.wav", "JK", "sa", "sad"),
    ("savee", "AudioData/KL/su03.wav", "KL", "su", "surprised"),
    ("savee", "JE_n30.wav", "JE", "n", "neutral"),
    ("emodb", "03a01Fa.wav", "03", "F", "happy"),
    ("emodb", "16b10Wb.wav", "16", "W", "angry"),
    ("emodb", "08a02Lc.wav", "08", "L", "others"),  # boredom
    ("emodb", "11b03Ea.wav", "11", "E", "disgusted"),
    ("emodb", "13a05Aa.wav", "13", "A", "fearful"),
    ("emodb", "09b01Ta.wav", "09", "T", "sad"),
    ("mead", "M003/audio/angry/level_1/001.m4a", "M003", "angry", "angry"),
    ("mead", "W009/audio/contempt/level_3/030.m4a", "W009", "contempt", "others"),
    ("mead", "M030/audio/fear/level_2/011.m4a", "M030", "fear", "fearful"),
    ("folder", "train/Happy/clip_001.wav", None, "happy", "happy"),
    ("folder", "pleasure/x.wav", None, "pleasure", "happy"),
    ("folder", "Boredom/speaker7/x.flac", None, "boredom", "others"),
    ("folder", "pain/x.wav", None, "pain", "others"),
    ("folder", "calm/x.wav", None, "calm", "neutral"),
])
def test_each_corpus_naming_gives_speaker_and_merged_label(corpus, name, speaker, source, label):
    labelled = label_file(corpus, Path(name))
    assert (labelled.speaker, labelled.source_label, labelled.label) == (speaker, source, label)


@pytest.mark.parametrize("corpus, name, reason", [
    ("ravdess", "02-01-05-01-02-01-12.mp4", "video-only"),
    ("ravdess", "03-01-09-01-02-01-12.wav", "not one of"),
    ("ravdess", "readme.wav", "7 two-digit fields"),
    ("crema_d", "1001_DFA_XYZ_XX.wav", "not one of"),
    ("tess", "ZZZ_back_angry.wav", "OAF|YAF"),
    ("tess", "OAF_back_bored.wav", "not one of"),
    ("savee", "DC_x01.wav", "not one of"),
    ("emodb", "03a01Za.wav", "not one of"),
    ("mead", "M003/audio/bored/level_1/001.m4a", "not one of MEAD's"),
    ("mead", "M003/audio/angry/lvl1/001.m4a", "expected"),
    ("folder", "misc/x.wav", "no enclosing folder"),
])
def test_names_outside_a_corpus_naming_are_refused_with_the_reason(corpus, name, reason):
    with pytest.raises(NotThisCorpus, match=reason):
        label_file(corpus, Path(name))


def test_every_table_maps_into_the_paper_classes_and_states_the_merges():
    assert set(CORPORA) == set(TABLES)
    rows = merge_table()
    assert all(label in PAPER_LABELS for _, _, label in rows)
    merged = {(corpus, source): label for corpus, source, label in rows}
    assert merged[("ravdess", "calm")] == "neutral" and merged[("tess", "ps")] == "surprised"
    assert merged[("emodb", "L")] == "others" and merged[("mead", "contempt")] == "others"
    assert merged[("folder", "pleasure")] == "happy" and merged[("folder", "pain")] == "others"
    assert merged[("folder", "contempt")] == "others" and merged[("folder", "boredom")] == "others"
    assert TABLES["mead"] == MEAD_EMOTIONS  # one MEAD table with the dataset reader


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.mark.parametrize("corpus, good, bad", [
    ("ravdess", ["Actor_01/03-01-01-01-01-01-01.wav", "Actor_02/03-01-03-01-01-01-02.wav"],
     ["Actor_01/02-01-01-01-01-01-01.mp4"]),
    ("crema_d", ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_SAD_LO.wav"], ["AudioWAV/notes.wav"]),
    ("tess", ["OAF_angry/OAF_back_angry.wav", "YAF_pleasant_surprised/YAF_back_ps.wav"], ["YAF_x/YAF_back.wav"]),
    ("savee", ["AudioData/DC/a01.wav", "ALL/JK_su02.wav"], ["AudioData/DC/info.wav"]),
    ("emodb", ["wav/03a01Fa.wav", "wav/16b10Wb.wav"], ["wav/03a01Za.wav"]),
    ("mead", ["M003/audio/happy/level_1/001.m4a", "W009/audio/sad/level_2/002.m4a"],
     ["M003/audio/bored/level_1/001.m4a"]),
    ("folder", ["angry/a.wav", "sub/neutral/b.flac"], ["unsorted/c.wav"]),
])
def test_scan_corpus_lists_labelled_files_and_reports_the_rest(tmp_path, corpus, good, bad):
    # The root's own name is a label word: folders above the root must never count.
    root = tmp_path / "happy" / corpus
    _touch(root, *good, *bad, "README.txt")
    if corpus == "mead":
        _touch(root, "M003/video/front/happy/level_1/001.mp4")  # same recording as the audio: not listed
    files, skipped = scan_corpus(corpus, root)
    assert sorted(str(f.path.relative_to(root)) for f in files) == sorted(good)
    assert [str(p.relative_to(root)) for p, _ in skipped] == bad
    assert all(f.path.is_absolute() and f.label in PAPER_LABELS for f in files)


def test_scan_corpus_needs_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        scan_corpus("ravdess", tmp_path / "absent")
    with pytest.raises(ValueError, match="unknown corpus"):
        label_file("iemocap", Path("x.wav"))
