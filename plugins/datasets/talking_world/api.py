"""talking_world's public API: what code outside the generator (the world measurer, tests,
benchmarks) may use, re-exported from the modules that define it.

The world measurer (:mod:`.measure`) imports talking_world only from here, so the generator's
modules stay free to change their private parts. A module of its own rather than the package
``__init__``: importing the plugin module (``.plugin``, read by every ``memo-zoo`` command)
imports the package, and that must stay light; this module imports the renderer (OpenCV).

- configuration: :class:`WorldConfig` (the generator's options), :func:`generation_fields` (the
  fields that determine the output, JSON-ready, with the generator's format version) and
  :func:`world_hash` (the short hash naming a world);
- the dataset: :class:`TalkingWorld` / :class:`TalkingWorldConfig` (generate on first use, list a
  split's clips);
- truth: :func:`load_truth` reads a clip's ``.npz`` into a :class:`WorldTruth`;
- rendering: :func:`plan_clips` lists the world's clips (:class:`ClipPlan`, one per clip, with its
  speaker and identity), and :class:`ClipRenderer` draws a :class:`FaceState` of a clip's face,
  returning the frame and its inner-mouth area exactly as the generator does.
"""

from .dataset import TalkingWorld, TalkingWorldConfig
from .face import FaceState
from .truth import WorldTruth, load_truth
from .world import ClipPlan, ClipRenderer, WorldConfig, generation_fields, plan_clips, world_hash

__all__ = [
    "ClipPlan", "ClipRenderer", "FaceState", "TalkingWorld", "TalkingWorldConfig", "WorldConfig", "WorldTruth",
    "generation_fields", "load_truth", "plan_clips", "world_hash",
]
