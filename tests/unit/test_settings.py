"""Machine settings from MEMO_ZOO_* environment variables."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from memo_zoo.settings import get_settings


def test_settings_read_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("MEMO_ZOO_DEVICE", "cuda:1")
    monkeypatch.setenv("MEMO_ZOO_DTYPE", "bfloat16")
    monkeypatch.setenv("MEMO_ZOO_DISABLE_PLUGINS", " a, b ,,")
    settings = get_settings()
    assert settings.weights_dir == Path(tmp_path)
    assert (settings.device, settings.dtype) == ("cuda:1", "bfloat16")
    assert settings.disabled_plugins == {"a", "b"}


def test_bad_device_is_named(monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_DEVICE", "tpu")
    with pytest.raises(ValidationError, match="unknown device 'tpu'"):
        get_settings()
