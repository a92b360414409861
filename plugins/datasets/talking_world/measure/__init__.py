"""Metrics of the synthetic world that need no pretrained weights (spec §8 on talking_world).

The standard suite (FID, FVD, Sync, Identity, E-FID) needs pretrained networks memo-zoo cannot
download. On ``talking_world`` the same questions (lips in sync, identity kept, expression
following the audio's emotion, realism) can be answered by a small network trained on the world
itself and checked against its exact ground truth:

- :mod:`.measurer`: ``WorldMeasurer``, one CNN trunk with mouth, identity and expression heads;
- :mod:`.training`: ``train_measurer`` trains it on a world's renders and checks it on held-out ones;
- :mod:`.store`: ``load_or_train_measurer``, a given file or a trained one cached by config hash;
- :mod:`.metrics`: the ``world_lip_sync``, ``world_identity``, ``world_expression`` and ``world_fd``
  metric plugins.

Part of the talking_world unit (issue 17): talking_world's plugin module (``..plugin``) registers
the four metrics, and this package reads the world only through talking_world's public API
(``..api``) and the core, never the generator's private modules (an import-linter contract in
pyproject.toml checks it).
"""
