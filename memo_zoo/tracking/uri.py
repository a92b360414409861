"""Where runs are recorded: recipe field > ``MEMO_ZOO_TRACKING_URI`` > an embedded sqlite store."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DB_NAME = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"


def resolve_tracking_uri(recipe_uri: str | None, env_uri: str | None, workdir: Path) -> str:
    if recipe_uri:
        return recipe_uri
    if env_uri:
        return env_uri
    return f"sqlite:///{(workdir / DEFAULT_DB_NAME).resolve()}"


def is_local_store(uri: str) -> bool:
    """True for stores on this machine, where memo-zoo picks the artifact folder itself."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri
