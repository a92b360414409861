"""What every component of every slot promises: documented options, buildable from a recipe's values."""

from __future__ import annotations

from typing import Any, Mapping

from memo_zoo.testing.build import build_component, expect, spec_of


def check_documented(entry: Any) -> None:
    """A summary, a description on every option (both shown by ``memo-zoo ls``) and a JSON schema
    (``memo-zoo schema`` writes it for editors)."""
    spec = spec_of(entry)
    expect(spec.summary.strip(), f"{spec.name!r} needs a summary (shown by `memo-zoo ls`)")
    for name, field in spec.config.model_fields.items():
        expect(field.description, f"option {name!r} of {spec.name!r} needs a description (shown by `memo-zoo ls`)")
    spec.config.model_json_schema()


def check_buildable(slot: str, entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """The factory builds a component from the config (defaults plus ``options``) and the slot's build args."""
    built = build_component(slot, entry, options)
    expect(built is not None, f"the factory of {spec_of(entry).name!r} returned None")
