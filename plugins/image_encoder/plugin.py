"""Registers the built-in image encoders (spec A4, §10)."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def image_encoder_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.image_encoder import configs

    return [
        ComponentSpec("conv", configs.ConvImageEncoderConfig, lazy("memo_zoo_plugins.image_encoder.conv:build"),
                      "small trainable CNN embedding (tiny CPU default)"),
        ComponentSpec("clip_vision", configs.ClipVisionConfig,
                      lazy("memo_zoo_plugins.image_encoder.clip_vision:build"),
                      "frozen CLIP vision tower, image_embeds (paper, A4; local weights)"),
        ComponentSpec("timm", configs.TimmEncoderConfig,
                      lazy("memo_zoo_plugins.image_encoder.timm_backbone:build"),
                      "frozen timm backbone, pooled features (local state dict)"),
        ComponentSpec("face_embedding", configs.FaceEmbeddingConfig,
                      lazy("memo_zoo_plugins.image_encoder.face_embedding:build"),
                      "frozen face-recognition net (TorchScript/.pt2), L2-normalised 512-d (released code, §10)"),
        ComponentSpec("insightface", configs.InsightFaceConfig, lazy("memo_zoo_plugins.image_encoder.insightface:build"),
                      "the release's face condition: SCRFD + 5-point alignment + ArcFace in ONNX Runtime, raw "
                      "512-d (§10)"),
    ]
