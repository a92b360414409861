"""Registers ``talking_world``, the embedded synthetic default dataset (issue 4), in the ``dataset`` slot."""

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
