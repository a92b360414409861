"""Built-in audio encoders: waveform -> per-video-frame audio tokens (spec A5, §10)."""
