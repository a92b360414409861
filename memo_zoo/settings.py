"""Machine-level settings read from the environment (``MEMO_ZOO_*``), separate from recipes.

A recipe says what to run; these say where this machine keeps things. Each can be set as an
environment variable, e.g. ``MEMO_ZOO_WEIGHTS_DIR=/data/weights``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMO_ZOO_", extra="ignore")

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: sqlite file mlflow.db in the working directory")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "memo-zoo", description="derived data (decoded frames, features)")
    weights_dir: Path | None = Field(
        None, description="folder where pretrained weights are looked up by name (never downloaded)")
    device: str = Field("auto", description="'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1', ...")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="default compute dtype")
    disable_plugins: str = Field(
        "", description="comma-separated entry-point names of plugins not to load")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto" and not (value == "cpu" or value.startswith("cuda") or value == "mps"):
            raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda, cuda:N or mps")
        return value

    @property
    def disabled_plugins(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.disable_plugins.split(",") if name.strip())


def get_settings() -> Settings:
    """Settings as the environment says now (not cached: tests and sub-commands change env)."""
    return Settings()
