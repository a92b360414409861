"""Contract checks for memo-zoo components: what each slot promises, for plugin authors' own tests.

One call checks a registered component against everything its slot promises (the protocols of
the slots, ``memo_zoo.slots``, also written on the hooks in ``memo_zoo.plugin.hookspecs``)::

    from memo_zoo.testing import check_component

    def test_my_component():
        check_component("temporal", "causal_conv")

A broken promise raises ``AssertionError`` naming it, so the checks work under any test runner
(pytest is not needed). Inputs and builds are seeded, and the caller's global torch RNG is left
as it was. Components whose options have no default (local weights, a dataset root) need values
for them: ``check_component("vae", "my_vae", options={"weights": path})``; without them
``MissingOptions`` says which are needed.

The per-slot checks (``check_temporal``, ``check_audio_fusion``, ...) take a registry entry or a
``ComponentSpec`` directly, so a spec can be checked before its package is installed. Their
parts, one promise each, live in ``memo_zoo.testing.temporal``, ``.audio_fusion`` and
``.protocols``; memo-zoo's own ``tests/plugins/test_contracts.py`` runs those over every
registered component.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from memo_zoo.testing.any_slot import check_buildable, check_documented
from memo_zoo.testing.audio_fusion import check_audio_fusion
from memo_zoo.testing.build import MissingOptions, build_component, perturb, required_options, spec_of
from memo_zoo.testing.protocols import (check_audio_encoder, check_emotion_detector, check_image_encoder,
                                        check_scheduler, check_task, check_vae)
from memo_zoo.testing.temporal import check_temporal

#: The whole-slot check of each slot that has one beyond documentation and building
#: (datasets, preprocess stages and metrics promise no protocol the kit can check with no data).
SLOT_CHECKS: dict[str, Callable[..., None]] = {
    "temporal": check_temporal,
    "audio_fusion": check_audio_fusion,
    "emotion_detector": check_emotion_detector,
    "audio_encoder": check_audio_encoder,
    "image_encoder": check_image_encoder,
    "vae": check_vae,
    "scheduler": check_scheduler,
    "task": check_task,
}


def check_component(slot: str, kind: str, registry: Any = None, *,
                    options: Mapping[str, Any] | None = None) -> list[str]:
    """Run every check that applies to component ``kind`` of ``slot``; return the names of those run.

    ``registry`` defaults to ``memo_zoo.plugin.manager.load_registry()``: the installed plugins,
    as ``memo-zoo run`` sees them, so this also checks that the entry point registers the kind.
    ``options`` are config values for options without a default (see the module docstring).
    Raises ``AssertionError`` on a broken promise, ``MissingOptions`` when options are needed.
    """
    if registry is None:
        from memo_zoo.plugin.manager import load_registry

        registry = load_registry()
    entry = registry.get(slot, kind)
    check_documented(entry)
    ran = [check_documented.__name__]
    slot_check = SLOT_CHECKS.get(slot)
    if slot_check is None:
        check_buildable(slot, entry, options)
        ran.append(check_buildable.__name__)
    else:  # the slot's checks build the component themselves, with the same options
        slot_check(entry, options)
        ran.append(slot_check.__name__)
    return ran


__all__ = [
    "MissingOptions", "SLOT_CHECKS", "build_component", "check_audio_encoder", "check_audio_fusion",
    "check_buildable", "check_component", "check_documented", "check_emotion_detector", "check_image_encoder",
    "check_scheduler", "check_task", "check_temporal", "check_vae", "perturb", "required_options", "spec_of",
]
