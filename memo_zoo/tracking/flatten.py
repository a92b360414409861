"""Flattening a nested recipe into MLflow params (``model.temporal.gamma -> 0.9``)."""

from __future__ import annotations

from typing import Any, Iterator

# MLflow's limits (mlflow.utils.validation); repeated here so that flattening does not import
# mlflow, and checked against mlflow's own values in tests/unit/test_tracking_flatten.py.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_PARAMS_PER_BATCH = 100
TRUNCATION_MARK = "...[truncated]"


def flatten(document: Any, prefix: str = "") -> dict[str, str]:
    """Dotted key -> string value for every leaf; an empty list or mapping becomes ``"[]"``/``"{}"``."""
    return dict(_leaves(document, prefix))


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, (list, tuple)) and node:
        for index, value in enumerate(node):
            yield from _leaves(value, f"{prefix}.{index}" if prefix else str(index))
    else:
        yield prefix, _as_param_value(node)


def _as_param_value(value: Any) -> str:
    if isinstance(value, dict):
        text = "{}"
    elif isinstance(value, (list, tuple)):
        text = "[]"
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        text = text[: MAX_PARAM_VALUE_LENGTH - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    return text


def batches(params: dict[str, str], size: int = MAX_PARAMS_PER_BATCH) -> Iterator[dict[str, str]]:
    items = list(params.items())
    for start in range(0, len(items), size):
        yield dict(items[start:start + size])
