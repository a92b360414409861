"""Local weight look-up: paths, names under MEMO_ZOO_WEIGHTS_DIR, and errors naming the file."""

import pytest

from memo_zoo.errors import MissingWeightsError
from memo_zoo.weights import resolve_weights


def test_a_path_is_used_as_given(tmp_path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text("{}")
    assert resolve_weights(tmp_path / "vae", "VAE", expect=("config.json",)) == tmp_path / "vae"


def test_a_name_is_looked_up_in_the_weights_dir(tmp_path, monkeypatch):
    (tmp_path / "wav2vec2-base-960h").mkdir()
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(tmp_path))
    assert resolve_weights("wav2vec2-base-960h", "wav2vec2") == tmp_path / "wav2vec2-base-960h"


def test_missing_file_is_named_with_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=f"Inception: not found at {tmp_path}/pt_inception.pth"):
        resolve_weights("pt_inception.pth", "Inception")


def test_a_name_without_a_weights_dir_says_how_to_fix_it(monkeypatch):
    monkeypatch.delenv("MEMO_ZOO_WEIGHTS_DIR", raising=False)
    with pytest.raises(MissingWeightsError, match="MEMO_ZOO_WEIGHTS_DIR is not set"):
        resolve_weights("i3d.pt", "I3D")


def test_a_folder_missing_an_expected_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="lacks model.safetensors"):
        resolve_weights(tmp_path, "UNet", expect=("model.safetensors",))
