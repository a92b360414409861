"""Registers ``talking_world``, the embedded synthetic default dataset (issue 4), in the ``dataset`` slot,
and its world metrics (``world_lip_sync``, ``world_identity``, ``world_expression``, ``world_fd``) in
the ``metric`` slot.

The world metrics belong to the talking_world unit (issue 17): they read generated frames with a
measurer trained on the world's own renders (:mod:`.measure`, hand-written, no pretrained weights),
so they are registered here, by the world they measure, not by the metric suite (``memo_zoo_eval``).
"""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def dataset_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorldConfig, build

    return [
        ComponentSpec("talking_world", TalkingWorldConfig, build,
                      "synthetic talking heads with exact truth: espeak speech, rendered faces (embedded default)"),
    ]


@hookimpl
def metric_components() -> list[ComponentSpec]:
    # Imported here for the same reason: the metric modules import torch.
    from memo_zoo_plugins.datasets.talking_world.measure import metrics as world

    return [
        ComponentSpec("world_lip_sync", world.WorldLipSyncConfig, world.build_lip_sync,
                      "talking_world: measured mouth opening vs truth mouth_open, r and best lag (no weights)"),
        ComponentSpec("world_identity", world.WorldIdentityConfig, world.build_identity,
                      "talking_world: identity-embedding cosine to the reference and its drift over time (no weights)"),
        ComponentSpec("world_expression", world.WorldExpressionConfig, world.build_expression,
                      "talking_world: measured expression vs truth emotion (spec E4), per frame and clip (no weights)"),
        ComponentSpec("world_fd", world.WorldFdConfig, world.build_fd,
                      "talking_world: Frechet distance of world-measurer features, generated vs truth (no weights)"),
    ]
