"""Registers the built-in audio encoders (spec A5)."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def audio_encoder_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.audio_encoder import configs

    return [
        ComponentSpec("log_mel", configs.LogMelConfig, lazy("memo_zoo_plugins.audio_encoder.log_mel:build"),
                      "trainable log-mel + MLP encoder, +-2 frame windows (tiny CPU default)"),
        ComponentSpec("wav2vec2", configs.Wav2Vec2EncoderConfig,
                      lazy("memo_zoo_plugins.audio_encoder.wav2vec2:build"),
                      "frozen Wav2Vec2 (local weights), all hidden states, +-2 frames -> MLP tokens (paper, §10)"),
    ]
