"""Options of the world measurer and the world metrics (``world_lip_sync``, ``world_identity``,
``world_expression``, ``world_fd``): pydantic only, no torch, numpy or scipy.

``talking_world.plugin`` registers the metrics without importing them, so ``memo-zoo ls``,
``validate`` and ``schema`` import none of their libraries (issue 17.8). ``training``, ``store``
and ``metrics`` import these from here, so their old import paths stay. The world a measurer is
trained on is talking_world's torch-free ``configs.WorldConfig`` (the same class ``api`` exports:
the rest of the world is still read through ``api`` only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from memo_zoo_plugins.datasets.talking_world.configs import WorldConfig


class MeasurerTraining(BaseModel):
    """How the world measurer is trained and checked (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    size: Optional[int] = Field(None, ge=16, le=256, description="input side in pixels; null = the world's frame "
                                                                 "size (other-size frames are resized bilinearly)")
    width: int = Field(16, ge=4, le=128, description="channels of the trunk's first layer (later layers: 2x, 4x, 6x)")
    embed_dim: int = Field(64, ge=2, le=1024, description="width of the identity embedding")
    frame_stride: int = Field(3, ge=1, description="use every k-th frame of each clip (neighbours are near copies)")
    balanced_frames: int = Field(
        400, ge=0, description="frames per speaker rendered with each emotion in turn, the expression head's "
                               "training data (module docstring); 0: train it on the clips' labels instead")
    epochs: int = Field(10, ge=1, le=1000, description="passes over the training frames")
    batch_size: int = Field(64, ge=2, description="frames per optimisation step")
    learning_rate: float = Field(3e-3, gt=0, description="peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    identity_weight: float = Field(0.25, ge=0, description="weight of the identity loss (mouth, expression: 1)")
    identity_margin: float = Field(0.2, ge=0, lt=1, description="CosFace additive cosine margin of the identity loss")
    identity_scale: float = Field(16.0, gt=0, description="CosFace logit scale s")
    min_intensity: float = Field(0.5, ge=0, le=1, description="expression frames are trained and checked only where "
                                                              "truth intensity >= this")
    holdout_clips: int = Field(1, ge=0, description="regular clips per speaker held out for the mouth / expression "
                                                    "check (the last ones by clip id)")
    identity_check_frames: int = Field(600, ge=2, description="frames of the held-out identities whose pairs give "
                                                              "the identity-verification AUC (evenly spread)")
    shift_pixels: int = Field(0, ge=0, le=8, description="augmentation: random whole-pixel shift up to this")
    noise: float = Field(0.0, ge=0, description="augmentation: Gaussian pixel noise (std, on the [-1, 1] scale)")
    blur: float = Field(0.0, ge=0, le=4, description="augmentation: Gaussian blur of sigma drawn uniformly in "
                                                     "[0, blur] pixels, on `blur_probability` of the frames; 0 = "
                                                     "off. Generated frames are as soft as real ones blurred by "
                                                     "about 1 px, which a measurer trained on sharp frames reads "
                                                     "as neutral (docs/emotion_diagnosis.md)")
    blur_probability: float = Field(0.5, ge=0, le=1, description="share of the training frames that are blurred "
                                                                 "when `blur` > 0")
    round_trip: Optional[dict[str, Any]] = Field(
        None, description="an autoencoder, as a recipe's model.vae names one (e.g. {kind: sd_vae, weights: "
                          "checkpoints/vae-talking-world-64}): every balanced render is also passed through its "
                          "encode-decode round trip and trained on with the same truth, so that the measurer reads "
                          "expressions as that autoencoder draws them as well as the world's own; null = off. The "
                          "autoencoder's weights are part of the cache key (docs/emotion_diagnosis.md)")
    seed: int = Field(0, ge=0, description="seed of the initialisation, batch order, renders and augmentation")
    device: str = Field("cpu", description="where to train: cpu, cuda, cuda:N")
    threads: Optional[int] = Field(None, ge=1, description="torch CPU threads while training; null = leave as set")


class MeasurerSource(BaseModel):
    """The options every world metric has for its measurer (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    measurer: Optional[Path] = Field(
        None, description="a trained world measurer (.safetensors, its .json report next to it): a path, or a name "
                          "under MEMO_ZOO_WEIGHTS_DIR; null = train one on `world` (cached under MEMO_ZOO_CACHE_DIR)")
    world: WorldConfig = Field(default_factory=WorldConfig,
                               description="the talking_world the measurer is trained on when `measurer` is null")
    training: MeasurerTraining = Field(default_factory=MeasurerTraining,
                                       description="how the measurer is trained when `measurer` is null")


class WorldMetricConfig(MeasurerSource):
    """Options shared by the world metrics: where the measurer comes from, and how it runs."""

    batch_size: int = Field(256, ge=1, description="frames per forward pass of the measurer")
    device: str = Field("auto", description="auto (MEMO_ZOO_DEVICE: CUDA when available), cpu, cuda, cuda:N")


class WorldLipSyncConfig(WorldMetricConfig):
    """Measured mouth opening vs the speech-driven truth, with a lag search (module docstring)."""

    max_lag: int = Field(5, ge=0, le=100, description="lags searched for lip_sync_best_r: -max_lag..max_lag frames")
    mouth: Literal["open", "area"] = Field(
        "open", description="measurer output compared with truth mouth_open: open (its reading of the speech-driven "
                            "opening) or area (the opening as drawn, speech and expression)")


class WorldIdentityConfig(WorldMetricConfig):
    """Cosine of identity embeddings, reference image vs frames, and its drift (module docstring)."""

    window_seconds: float = Field(10.0, gt=0, description="world_identity_first / _last: this many seconds at "
                                                          "each end")
    window_fraction: float = Field(0.25, gt=0, le=0.5, description="each window's share of the frames when the "
                                                                   "video is shorter than two windows")


class WorldExpressionConfig(WorldMetricConfig):
    """Measured expression vs the truth emotion (spec E4), per frame and per clip (module docstring)."""

    min_intensity: float = Field(0.5, ge=0, le=1, description="frames count where truth intensity >= this")


class WorldFdConfig(WorldMetricConfig):
    """Frechet distance of the measurer's trunk features, generated vs ground-truth frames (module docstring)."""

    frame_stride: int = Field(1, ge=1, description="use every k-th frame of each video")
    reference_stats: Optional[str] = Field(None, description="precomputed reference statistics (.npz with mu, "
                                                             "sigma); default: features of the ground-truth videos")
    per_video_distance: bool = Field(True, description="also give each video's own distance to its ground truth "
                                                       "(noisy for videos with few frames)")
