"""Registers the built-in image encoders (spec A4, §10)."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def image_encoder_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.image_encoder import clip_vision, conv, face_embedding, timm_backbone

    return [
        ComponentSpec("conv", conv.ConvImageEncoderConfig, conv.build,
                      "small trainable CNN embedding (tiny CPU default)"),
        ComponentSpec("clip_vision", clip_vision.ClipVisionConfig, clip_vision.build,
                      "frozen CLIP vision tower, image_embeds (paper, A4; local weights)"),
        ComponentSpec("timm", timm_backbone.TimmEncoderConfig, timm_backbone.build,
                      "frozen timm backbone, pooled features (local state dict)"),
        ComponentSpec("face_embedding", face_embedding.FaceEmbeddingConfig, face_embedding.build,
                      "frozen face-recognition net (TorchScript/.pt2), L2-normalised 512-d (released code, §10)"),
    ]
