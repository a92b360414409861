"""``memo-zoo demo``: a web page that generates talking videos, for one machine or a small team.

A layer of its own between ``cli`` (which imports it) and ``tasks`` (whose experiment keys name
the default model's training folder). Modules, one job each:

- ``options``: ``DemoOptions``, every option with its safe default;
- ``model_source``: which weights are served (a checkpoint, a release, or the recipe's own
  training, trained first when missing) and loading them once;
- ``workspace``: the demo's own temporary folder, the only place uploads and outputs live and the
  only one served; removed when the server stops;
- ``checks``: the page's inputs checked and turned into generation options;
- ``job``: one generation, without Gradio (the MP4, the emotion timeline, the warnings);
- ``timeline``: the emotion-per-segment picture; ``progress``: frames/s and time left in the page;
- ``app``: the page's layout and its queued Generate event; ``server``: launch with every limit
  set, and clean-up.

Gradio is imported only by ``app`` and ``server``, so ``memo-zoo --help`` never pays for it.
"""
