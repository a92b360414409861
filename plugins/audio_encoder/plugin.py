"""Registers the built-in audio encoders (spec A5)."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def audio_encoder_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.audio_encoder import log_mel, wav2vec2

    return [
        ComponentSpec("log_mel", log_mel.LogMelConfig, log_mel.build,
                      "trainable log-mel + MLP encoder, +-2 frame windows (tiny CPU default)"),
        ComponentSpec("wav2vec2", wav2vec2.Wav2Vec2EncoderConfig, wav2vec2.build,
                      "frozen Wav2Vec2 (local weights), all hidden states, +-2 frames -> MLP tokens (paper, §10)"),
    ]
