"""Registers ``talking_world``, the embedded synthetic default dataset (issue 4), in the ``dataset`` slot,
and its world metrics (``world_lip_sync``, ``world_identity``, ``world_expression``, ``world_fd``) in
the ``metric`` slot.

The world metrics belong to the talking_world unit (issue 17): they read generated frames with a
measurer trained on the world's own renders (:mod:`.measure`, hand-written, no pretrained weights),
so they are registered here, by the world they measure, not by the metric suite (``memo_zoo_eval``).
"""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def dataset_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.datasets.talking_world import configs

    return [
        ComponentSpec("talking_world", configs.TalkingWorldConfig,
                      lazy("memo_zoo_plugins.datasets.talking_world.dataset:build"),
                      "synthetic talking heads with exact truth: espeak speech, rendered faces (embedded default)"),
    ]


@hookimpl
def metric_components() -> list[ComponentSpec]:
    # The same: torch-free configs (the measurer's), the metric modules named by lazy reference.
    from memo_zoo_plugins.datasets.talking_world.measure import configs

    return [
        ComponentSpec("world_lip_sync", configs.WorldLipSyncConfig,
                      lazy("memo_zoo_plugins.datasets.talking_world.measure.metrics:build_lip_sync"),
                      "talking_world: measured mouth opening vs truth mouth_open, r and best lag (no weights)"),
        ComponentSpec("world_identity", configs.WorldIdentityConfig,
                      lazy("memo_zoo_plugins.datasets.talking_world.measure.metrics:build_identity"),
                      "talking_world: identity-embedding cosine to the reference and its drift over time (no weights)"),
        ComponentSpec("world_expression", configs.WorldExpressionConfig,
                      lazy("memo_zoo_plugins.datasets.talking_world.measure.metrics:build_expression"),
                      "talking_world: measured expression vs truth emotion (spec E4), per frame and clip (no weights)"),
        ComponentSpec("world_fd", configs.WorldFdConfig,
                      lazy("memo_zoo_plugins.datasets.talking_world.measure.metrics:build_fd"),
                      "talking_world: Frechet distance of world-measurer features, generated vs truth (no weights)"),
    ]
